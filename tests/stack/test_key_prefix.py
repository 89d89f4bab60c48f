"""One rule for the archives' key prefix, wherever one is given: the constructs' ``model_prefix``, the
``modelPrefix`` context key and the packager's S3 destination accept and refuse the same prefixes,
and each error names where the value came from."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from mme_constructs import ModelBucket, ModelStore
from mme_constructs.packager.core import S3Destination
from mme_constructs.packager.errors import SpecError
from stacks.settings import SettingsError, settings_from_context


def _store_prefix(prefix: str) -> str:
    stack = cdk.Stack(cdk.App(), "S")
    return ModelStore(s3.Bucket.from_bucket_name(stack, "B", "models-bucket"), model_prefix=prefix).model_prefix


def _context_prefix(prefix: str) -> str:
    return settings_from_context({"modelPrefix": prefix}.get).model_prefix


def _destination_prefix(prefix: str) -> str:
    return S3Destination(None, "models-bucket", prefix).prefix


@pytest.mark.parametrize(("given", "normalised"), [
    ("models/", "models/"),
    ("/archives", "archives/"),
    ("team-b/archives/", "team-b/archives/"),
    ("v1.2/image_editing/", "v1.2/image_editing/"),
    ("..models/", "..models/"),
])
def test_every_entry_point_normalises_a_prefix_the_same_way(given, normalised):
    assert _store_prefix(given) == _context_prefix(given) == _destination_prefix(given) == normalised


@pytest.mark.parametrize("bad", ["", "/", "a*b/", "models?", "my models/", "a//b/", "a/../b/", "./models/",
                                 "mödels/", "a+b/", "100%/", "a#b/"])
def test_every_entry_point_refuses_the_same_prefixes_naming_its_key(bad):
    with pytest.raises(ValueError, match=r"^model_prefix: ") as store:
        _store_prefix(bad)
    with pytest.raises(ValueError, match=r"^model_prefix: "):
        ModelBucket(cdk.Stack(cdk.App(), "S"), "Models", model_prefix=bad)
    with pytest.raises(SettingsError, match=r"^context modelPrefix: ") as context:
        _context_prefix(bad)
    with pytest.raises(SpecError, match=r"^key prefix: ") as destination:
        _destination_prefix(bad)
    reasons = {str(e.value).split(": ", 1)[1] for e in (store, context, destination)}
    assert len(reasons) == 1 and repr(bad) in reasons.pop()  # the same reason, quoting the value

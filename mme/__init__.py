"""Client library, CLI and local tools for the image-editing multi-model endpoint."""

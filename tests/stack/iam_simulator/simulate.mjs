// Evaluates AWS authorization requests with @cloud-copilot/iam-simulate (identity + resource policies,
// conditions, explicit denies). Reads a JSON list of simulations on stdin (the library's Simulation
// shape); writes one JSON list: per simulation {"result": "Allowed" | "ExplicitlyDenied" | ..., "ignoredContextKeys"}
// or {"result": "error", "errors"}; with IAM_SIMULATE_EXPLAIN set, the library's full analysis too.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const results = []
for (const simulation of simulations) {
  const outcome = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (outcome.resultType === 'error') {
    results.push({ result: 'error', errors: outcome.errors })
  } else {
    const single = outcome.resultType === 'single' ? outcome.result : undefined
    results.push({
      result: outcome.overallResult,
      ignoredContextKeys: single?.ignoredContextKeys ?? [],
      ...(process.env.IAM_SIMULATE_EXPLAIN ? { analysis: single?.analysis } : {}),
    })
  }
}
process.stdout.write(JSON.stringify(results) + '\n')

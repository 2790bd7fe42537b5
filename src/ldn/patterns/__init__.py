"""Communication patterns between care-provider nodes (SPEC §9).

- `raadplegen`: pull and indexed pull. A professional asks their own node to localize a patient's
  data at the NVI, and the node queries every holder concurrently and merges the answers into one
  Bundle with per-holder provenance and status.
- `verwijzen`: notified pull. The sender keeps a workflow Task and notifies the receiver; the
  receiver pulls only the listed queries, within the restriction period, with a token that carries
  the authorization base (the workflow Task id).
- `node`: what the patterns add to each node app (routes, start-up work); `identity`: who the
  professional behind an internal request is; `audit`: both sides' NEN 7513 events; `demo`: the
  `ldn demo` walkthrough; `cli`: `ldn query`, `ldn refer`, `ldn inbox`, `ldn demo`.
"""

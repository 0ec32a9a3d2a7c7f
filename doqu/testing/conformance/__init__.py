"""The conformance suite: one module per topic of the contract (docs/contract.md)."""

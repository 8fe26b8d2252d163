"""What runs the state machine: SQLite storage, the ABCI-shaped application, the embedded
sequencer, and the auditor's replay."""

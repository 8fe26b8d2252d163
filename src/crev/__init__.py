"""crev: self-consumed solar → signed readings → C-REV on an auditable ledger."""

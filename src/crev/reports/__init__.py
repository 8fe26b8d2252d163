"""The read side: what participants get out of the ledger after the fact. Consumer figures
(``report.py``), monthly and retirement statements as CSV and PDF (``statements.py``), certificate
and retirement exports (``export.py``) and market data (``marketdata.py``). Everything here reads
the state and the index; nothing here changes the ledger."""

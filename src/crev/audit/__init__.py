"""What an auditor runs against a ledger it does not have to trust: the full replay from genesis
(``replay.py``, ``crev verify``) and provenance with inclusion and state proofs (``trace.py``,
``crev trace`` and the API's ``/v1/trace``)."""

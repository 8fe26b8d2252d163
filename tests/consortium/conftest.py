import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a multi-process CometBFT network (runs in `make test`; "
                                       "deselect with -m 'not slow')")

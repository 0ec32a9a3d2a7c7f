pytest_plugins = ["doqu.testing.plugin"]

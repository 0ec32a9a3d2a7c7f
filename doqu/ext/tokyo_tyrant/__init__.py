"""Tokyo Tyrant storage for doqu: a table database served over TCP by ``ttserver``."""

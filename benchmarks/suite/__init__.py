"""doqu's benchmark suite: one workload on every engine, doqu against each engine's raw driver.

Entry point: ``benchmarks/run.py`` (``make bench``). Modules:

* :mod:`suite.workload`: the data, the operations and how they are timed;
* :mod:`suite.contestants`: the doqu side (the same code for every engine)
  and the contract every contestant follows;
* :mod:`suite.engines`: one module per engine, with its raw-driver baseline;
* :mod:`suite.peers`: TinyDB, the peer of the embedded engines;
* :mod:`suite.machine`: what the run ran on;
* :mod:`suite.report`: RESULTS.md, results.json and the plots.
"""

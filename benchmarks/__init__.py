"""The benchmarks of `make bench` and the soak test of `make soak`. Run from the repository root as
modules: `python -m benchmarks.bench` (every part, then results.md), `python -m benchmarks.<module>`
for one part alone.

  bench.py                  runs the parts, merges re-measured parts into results.json, writes the report
  benchlib.py               the measurement harness: job configs, model shape twins, gloo ranks, a timed rank
  netns.py                  two simulated nodes (network namespaces, a shaped veth) for parts 3, 3b, 3d
  bench_<part>.py           a part's measurement: bytes (1), overhead (2), network (3, with
                            bench_network_methods.py), sharded (3b), calibration (3d, the step model's
                            constants), loop (4, with plain_loop.py), collect (5), stepmodel (6, the
                            model of step_model.py judged in step_model_calibration.py), modeljobs (7,
                            a model job killed and rejoining)
  bench_<part>_report.py    a part's section of results.md and its plot (network_methods: 3c; modeljobs:
                            figures/kill_rejoin.py's tables, which the reproduction report shows too)
  report.py                 results.md from results.json: the sections in order, the targets
  tables.py                 the table and plot helpers every section shares
  soak_resume.py            `make soak`: SIGKILL a mini run at random moments, check it resumes exactly
"""

"""The benchmarks of `make bench` and the soak test of `make soak`. Run from the repository root as
modules: `python -m benchmarks.bench` (every part, then results.md), `python -m benchmarks.<module>`
for one part alone.

  bench.py                  runs the parts, merges re-measured parts into results.json, writes the report
  benchlib.py               the measurement harness: job configs, model shape twins, gloo ranks, a timed rank
  netns.py                  two simulated nodes (network namespaces, a shaped veth) for parts 3, 3b, 3d
  bench_<part>.py           a part's measurement (run) and its section of results.md and plot (section,
                            plot): bytes (1), overhead (2), network (3, with bench_network_methods.py,
                            whose section is 3c), sharded (3b), calibration (3d, the step model's
                            constants), loop (4, with plain_loop.py), collect (5, with
                            bench_reproduce.py), stepmodel (6, the model of step_model.py judged in
                            step_model_calibration.py), modeljobs (7, a model job killed and
                            rejoining; its section is figures/kill_rejoin.py's tables, which the
                            reproduction report shows too), paperpath (8), peer_check (9), listing (10)
  report.py                 results.md from results.json: every part's section in order, the targets
  tables.py                 the table and plot helpers every section shares
  soak_resume.py            `make soak`: SIGKILL a mini run at random moments, check it resumes exactly
"""

"""Reading, aggregating and rendering run results (tools/parse_results.py is the command line):
records.py reads and validates results.json, upstream_logs.py reads old upstream-style log.txt,
aggregate.py gives mean ± std over seeds, pairing.py sets IP-CLIP groups against their references
(the metrics themselves are in trainers/ipclip/protocol.py), render.py prints the tables."""

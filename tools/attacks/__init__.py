"""The attack suite's tooling (tools/attack.py is the command line): plan.py finds the protected
runs of a results tree and plans every attack on each (a train.py run under <run>/attacks/<name>/),
report.py reads them back into the robustness table and its plots."""

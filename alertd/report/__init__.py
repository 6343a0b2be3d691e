"""Pictures and reports of runs: a PNG per notification (plot.py, needs the `report` extra) and a
one-page HTML summary of finished runs (collect.py -> svg.py -> html.py; `alertd report`)."""

"""``compare --report DIR``: the comparison as a page to look at, beside the files it came from.

DIR gets ``index.html`` (the verdict, the numbers side by side, the differences, the outputs and a
time-sequence graph per connection, kernel run beside stack run, from :mod:`.timeseq`),
``comparison.json`` and every run's capture.  The page is rendered with Jinja2 (autoescaped: the
program's output goes into it) and refers to its pictures by relative name, so the directory can
be copied or served as it is.  Both libraries are optional: ``pip install pytcp-green[report]``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytcp_green.compare.report import Comparison, write_json
from pytcp_green.compare.timeseq import Trace, plot_pair, read_traces

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pytcp-green compare: {{ program }}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1300px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.same { color: #17702e; } .different { color: #b00020; }
pre { background: #f6f6f6; padding: 0.7em; overflow-x: auto; max-height: 25em; }
img { max-width: 100%; border: 1px solid #ddd; }
</style></head><body>
<h1>pytcp-green compare</h1>
<p><code>{{ program }}</code>{% if peer %} against peer <code>{{ peer }}</code>{% endif %}
{% if impair %} through <code>{{ impair }}</code>{% endif %}, {{ runs }} run(s) over each.</p>
{% if same %}<h2 class="same">Same behaviour</h2><p>Exit status, stdout and stderr identical in every run.</p>
{% else %}<h2 class="different">Different behaviour</h2><pre>{{ differences }}</pre>{% endif %}
<table><tr><th></th><th>kernel</th><th>stack</th></tr>
{% for label, k, s in rows %}<tr><td>{{ label }}</td><td>{{ k }}</td><td>{{ s }}</td></tr>
{% endfor %}</table>
{% for plot in plots %}<h3>{{ plot.title }}</h3>
<img src="{{ plot.file }}" alt="time-sequence graph of {{ plot.title }}, kernel run beside stack run">
{% endfor %}
<h3>Output of the first runs</h3>
<table><tr><th></th><th>kernel</th><th>stack</th></tr>
<tr><td>stdout</td><td><pre>{{ kernel.stdout }}</pre></td><td><pre>{{ stack.stdout }}</pre></td></tr>
<tr><td>stderr</td><td><pre>{{ kernel.stderr }}</pre></td><td><pre>{{ stack.stderr }}</pre></td></tr></table>
<p>Files: <a href="comparison.json">comparison.json</a>{% for pcap in pcaps %},
<a href="{{ pcap }}">{{ pcap }}</a>{% endfor %}</p>
</body></html>
"""


def _pick(traces: list[Trace], index: int) -> Trace | None:
    return traces[index] if index < len(traces) else None


def write_report(comparison: Comparison, directory: Path) -> Path:
    """Write the page, its graphs and the JSON into ``directory`` (which holds the captures); return the page."""
    import jinja2

    write_json(comparison, str(directory / "comparison.json"))
    kernel_run, stack_run = comparison.kernel[0], comparison.stack[0]
    kernel_traces = read_traces(kernel_run.pcap, since=kernel_run.started)
    stack_traces = read_traces(stack_run.pcap, since=stack_run.started)
    plots = []
    for i in range(max(len(kernel_traces), len(stack_traces))):
        kernel, stack = _pick(kernel_traces, i), _pick(stack_traces, i)
        either = kernel or stack
        server = either.server if either is not None else ""
        title = f"connection {i + 1} (to {server})"
        name = f"timeseq-{i + 1}.png"
        plot_pair(kernel, stack, title, directory / name)
        plots.append({"title": title, "file": name})
    page = jinja2.Environment(autoescape=True).from_string(_PAGE).render(
        program=" ".join(comparison.program.argv), peer=comparison.program.peer,
        impair=str(comparison.program.impair) if comparison.program.impair else None,
        runs=len(comparison.kernel), same=comparison.same, differences="\n".join(comparison.differences()),
        rows=comparison.rows(), plots=plots, kernel=kernel_run, stack=stack_run,
        pcaps=sorted(os.path.basename(r.pcap) for r in (*comparison.kernel, *comparison.stack)))
    out = directory / "index.html"
    out.write_text(page, encoding="utf-8")
    return out


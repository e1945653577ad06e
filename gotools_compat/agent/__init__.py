"""``gotools-agent``: a receiver for the OpenCensus agent protocol, serving Prometheus.

Run it as ``gotools-agent`` or ``python -m gotools_compat.agent`` (see
``--help``), or in-process::

    from gotools_compat.agent import Agent

    with Agent("127.0.0.1:0", "127.0.0.1:0") as agent:
        ...  # send to agent.port, scrape agent.prometheus_port
"""

from gotools_compat._server import Limits

from ._agent import Agent

__all__ = ["Agent", "Limits"]

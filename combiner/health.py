"""The standard gRPC health service (grpc.health.v1) on the combiner: what probes and load balancers ask.

NOT_SERVING until the combiner has bound its port and registered in the statestore, SERVING from then
on, NOT_SERVING for good once it starts to shut down (so a probe or balancer stops sending clients to
a draining combiner). The overall status ("") and each of our services by name answer alike.
Health needs no credential (scaleout/roles.py), as Kubernetes probes carry none; it reveals nothing
but that status.
"""

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICES = ("", "scaleout.CombinerClient", "scaleout.ModelService", "scaleout.Control")


class CombinerHealth:
    """The health servicer of one combiner and the transitions of its status."""

    def __init__(self) -> None:
        self._servicer = health.aio.HealthServicer()

    def add_to(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def not_serving(self) -> None:
        """Before the combiner is ready: every service NOT_SERVING (the servicer starts SERVING)."""
        for service in SERVICES:
            await self._servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def serving(self) -> None:
        for service in SERVICES:
            await self._servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def draining(self) -> None:
        """Shutting down: NOT_SERVING from now on, whatever is set later."""
        await self._servicer.enter_graceful_shutdown()

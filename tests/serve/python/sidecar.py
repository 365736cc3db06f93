"""A Python sender's view of `spikebreaker serve`: Envoy's rate-limit service over gRPC (grpcio,
with the messages generated from Envoy's own protos by the xds-protos package) and the HTTP JSON
routes (the standard library's http.client). Shared by the tests and examples/python."""

import http.client
import json

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

DOMAIN = "spikebreaker"


def rls(address):
    """A stub of envoy.service.ratelimit.v3.RateLimitService at host:port."""
    return rls_pb2_grpc.RateLimitServiceStub(grpc.insecure_channel(address))


def request(kind, hits=0, domain=DOMAIN):
    """A RateLimitRequest about `hits` sends of `kind` (0: unset, one send)."""
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="kind", value=kind)
    return rls_pb2.RateLimitRequest(
        domain=domain,
        hits_addend=hits,
        descriptors=[ratelimit_pb2.RateLimitDescriptor(entries=[entry])],
    )


def batch(kinds, domain=DOMAIN):
    """A RateLimitRequest with one descriptor per send, in order: each descriptor's status says
    whether its send may go out."""
    return rls_pb2.RateLimitRequest(
        domain=domain,
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key="kind", value=kind)])
            for kind in kinds
        ],
    )


OK = rls_pb2.RateLimitResponse.OK


def is_ok(response):
    return response.overall_code == OK


class Http:
    """JSON over one kept-alive HTTP/1.1 connection."""

    def __init__(self, address, token=None):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = token

    def call(self, method, path, body=None):
        """(status, headers, JSON body) of one request."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        payload = None if body is None else json.dumps(body)
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        text = response.read()
        return response.status, dict(response.getheaders()), json.loads(text) if text else None

    def set_clock(self, ms):
        """Moves a test server's manual clock to `ms`."""
        status, _, body = self.call("POST", "/admin/clock", {"set_ms": ms})
        assert status == 200, body

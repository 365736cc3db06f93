"""What a broken or hostile gRPC client gets: bytes that are not a RateLimitRequest, a message
far over the server's bound. Prints each call's gRPC status code name, as JSON.

    python faults.py GRPC_ADDR
"""

import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

METHOD = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"


def code(call, payload):
    try:
        call(payload, timeout=30)
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def main(address):
    channel = grpc.insecure_channel(address)
    raw = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    out = {
        # Field 1 (domain) announced as 100 bytes long, 3 given.
        "truncated": code(raw, b"\x0a\x64abc"),
        # A wire type protobuf does not have.
        "bad_wire_type": code(raw, b"\x0f\x01"),
        # Field 2 (a descriptor) holding garbage.
        "garbage_descriptor": code(raw, b"\x12\x04\xff\xff\xff\xff"),
        "one_megabyte": code(raw, b"\x0a\x80\x80\x40" + b"k" * (1 << 20)),
    }
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    out["health_after"] = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])

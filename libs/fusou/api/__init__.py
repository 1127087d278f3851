"""The API layer: everything that speaks protobuf or gRPC.

``<service>/v1/`` hold the code generated from ``protos/`` (``scripts/gen_protos.py``; the names
on the wire are ``fusou.<service>.v1``). The other modules translate between those messages and
the domain's plain values. The domain packages (``fusou.ingest``, ``fusou.archive``, ...) import
nothing from here, nor ``grpc`` or ``google.protobuf``: a test holds them to that.
"""

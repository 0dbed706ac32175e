"""Combiner tests: a real grpc.aio combiner on loopback, driven through the real proto."""

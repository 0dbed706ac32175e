"""Wire contract (scaleout.proto) and its generated gRPC stubs."""

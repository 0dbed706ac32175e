"""The combiner: gRPC server for clients and the controller, client registry, round handler, aggregators."""

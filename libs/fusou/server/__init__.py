"""gRPC server plumbing shared by every service: hosting, health, reflection, errors, shutdown."""

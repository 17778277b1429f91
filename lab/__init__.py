"""The local lab: real kamailio, baresip and mosquitto on loopback for `make run`, tests and benchmarks."""

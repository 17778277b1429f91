"""Real peers on loopback for `make run`, the tests and the benchmarks: kamailio (registrar with digest
auth), baresip (far ends), mosquitto (the CRM's broker) and the phone daemon itself on the sim board.
Each takes free ports and its own scratch directory, so runs never collide."""

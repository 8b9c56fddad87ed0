"""A real multi-node Docker Swarm on this one machine, for tests (:mod:`tests.swarm.testbed`)."""

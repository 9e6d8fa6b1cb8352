"""Peer servers and their client for the side-by-side race (`loadtests.race`)."""

"""Layer 2 for simulated phones: DHCP and LLDP on a real interface (scapy), in a network namespace
of their own; `wire.WireNetwork` is the `simulators.network.NetworkLayer` that speaks them."""

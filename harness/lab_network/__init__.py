"""The harness's side of a lab network: namespaces for a lab in a box (`netns`), the DHCP
responder (`dhcp_responder`), the LLDP advertiser (`lldp_advertiser`) and the packet capture
whose packets become evidence (`capture`)."""

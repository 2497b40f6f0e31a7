"""The harness's side of a lab network: namespaces for a lab in a box (`netns`), the DHCP
responder (`dhcp_responder`), the LLDP advertiser (`lldp_advertiser`), the packet capture
(`capture`) whose frames become evidence (`evidence`), and all of them as one service on one
interface (`service.LabNetwork`, behind `enrollab lab network`)."""

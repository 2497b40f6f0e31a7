"""Physical phones on a lab bench (issue 14): how the harness reboots them (`reboot`: SIP NOTIFY
check-sync, PoE power cycle over SNMP, or an operator) and, later, how it observes them."""

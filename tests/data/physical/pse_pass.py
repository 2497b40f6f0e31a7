"""A switch's PSE port table for net-snmp's snmpd, as a `pass` handler (snmpd.conf(5)):
pethPsePortAdminEnable.<group>.<port> for the ports listed in the state file, readable and
writable with TruthValue 1/2. Every accepted set is appended to the state file's "sets" with its
time, so a test sees exactly what the harness did to the port.

    pass .1.3.6.1.2.1.105.1.1.1.3 /usr/bin/python3 pse_pass.py STATE.json
"""

import json
import sys
import time

BASE = ".1.3.6.1.2.1.105.1.1.1.3"


def main() -> None:
    state_file, op, oid = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(state_file) as f:
        state = json.load(f)
    ports = state["ports"]  # "group.port" -> 1|2
    index = oid[len(BASE) + 1:] if oid.startswith(BASE + ".") else ""
    if op == "-g":
        if index in ports:
            print(f"{BASE}.{index}\ninteger\n{ports[index]}")
    elif op == "-n":
        keys = sorted(ports, key=lambda k: tuple(int(x) for x in k.split(".")))
        after = [k for k in keys if not index or tuple(int(x) for x in k.split(".")) > tuple(
            int(x) for x in index.split(".") if x)]
        if after:
            print(f"{BASE}.{after[0]}\ninteger\n{ports[after[0]]}")
    elif op == "-s":
        kind, value = sys.argv[4], sys.argv[5]
        if index not in ports:
            print("not-writable")
        elif kind != "integer" or value not in ("1", "2"):
            print("wrong-type" if kind != "integer" else "wrong-value")
        else:
            ports[index] = int(value)
            state.setdefault("sets", []).append({"port": index, "value": int(value), "at": time.time()})
            with open(state_file, "w") as f:
                json.dump(state, f)


main()

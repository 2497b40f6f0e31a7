"""The device's enrollment answer (PROTOCOL §2): `decide.decide_enrollment(facts, now)`, one pure
decision per `POST /device/v1/enroll`; `decide` lists the rules in order and the module of each."""

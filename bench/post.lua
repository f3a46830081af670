-- wrk script: POST /run-simulation with no body.
wrk.method = "POST"

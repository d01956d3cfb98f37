-- Every system's request: one POST of the JSON body in the file $WRK_BODY, which the benchmark writes per
-- system (bench/benchmark/measure.py: the tutorial's row to /predict, or one V2 request).
local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
dofile("report.lua")

-- The same row for MLServer: Open Inference Protocol V2, one FP64 tensor of shape [1, 4].
wrk.method = "POST"
wrk.body = '{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}'
wrk.headers["Content-Type"] = "application/json"
dofile("report.lua")

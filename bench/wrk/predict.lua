-- The tutorial's request, one row per POST: tutorial app, one replica direct, full stack.
wrk.method = "POST"
wrk.body = '{"features": [1, 2, 3, 4]}'
wrk.headers["Content-Type"] = "application/json"
dofile("report.lua")

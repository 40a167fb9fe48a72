-- wrk script: POST the body in BODY with the headers in AUTH and CONTENT_TYPE to PATH.
wrk.method = "POST"
wrk.path = os.getenv("PATH_TO_HIT")
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")

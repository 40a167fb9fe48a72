-- wrk script for make soak: cycles through valid requests on every route the local server
-- answers without Argon2. AUTH is a Basic header for the client, TOKEN a live access token.
-- Issued tokens live TOKEN_LIFETIME seconds (5 by default), so the in-memory store's live set (and the server's memory) levels off.
local requests = {}
local next_request = 0

function init(args)
  local form = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = os.getenv("AUTH") }
  requests = {
    wrk.format("POST", "/oauth2/token", form, "grant_type=client_credentials&access-token-lifetime=" .. (os.getenv("TOKEN_LIFETIME") or "5")),
    wrk.format("POST", "/oauth2/introspect", form, "token=" .. os.getenv("TOKEN")),
    wrk.format("POST", "/oauth2/revoke", form, "token=an-unknown-token&token_type_hint=access_token"),
    wrk.format("GET", "/.well-known/jwks.json"),
    wrk.format("GET", "/.well-known/oauth-authorization-server"),
  }
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

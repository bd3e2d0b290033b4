// The Lua scripts of the Redis backend (docs/tunnel.md). Each touches only keys passed in
// KEYS, all of one app (one hash tag), so a Redis Cluster can run them. They are run with
// EVALSHA and fall back to EVAL when the server answers NOSCRIPT (a restarted Redis has
// lost its script cache). Pure: texts and their SHA1.
#pragma once

#include <string>
#include <string_view>

namespace funcie::redis_backend {

struct script {
  std::string_view name;
  std::string_view text;
  std::string sha;  ///< SHA1 of text, lower-case hex, as EVALSHA wants it.
};

/// Lower-case hex SHA1 of `text` (what SCRIPT LOAD answers).
std::string sha1_hex(std::string_view text);

/// Offer (forwarder). KEYS: consumers, req:<id>, to:<id>, consumer:<S>. ARGV: mode, envelope,
/// ttl ms of req:<id>, channel, notice, "SPUBLISH" on a Redis Cluster with sharded pub/sub (the
/// consumers listen with SSUBSCRIBE on the slot's node; else PUBLISH), S. Drops expired sessions
/// by server TIME; returns 0 when none is left. Mode "presence" (KEYS: consumers) returns 1 then.
/// Mode "offer" returns -1 when the chosen session S is gone (the forwarder picks again), else
/// names S as the only session that may claim it (to:<id>), stores the envelope, publishes the
/// notice on S's own channel and returns the number of receivers, deleting both again (and
/// returning -1) when the notice reached nobody: S's subscription is gone (killed) although
/// its presence has not expired yet. Mode "announce" is "offer" for an envelope stored just before
/// with a plain SET (a big one: Lua would copy it twice); it is deleted when nobody is left or S
/// is gone.
inline constexpr std::string_view offer_text = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then
  if ARGV[1] == 'announce' then redis.call('DEL', KEYS[2]) end
  return 0
end
if ARGV[1] == 'presence' then return 1 end
if redis.call('EXISTS', KEYS[4]) == 0 then
  if ARGV[1] == 'announce' then redis.call('DEL', KEYS[2]) end
  return -1
end
redis.call('SET', KEYS[3], ARGV[7], 'PX', tonumber(ARGV[3]) + 60000)
if ARGV[1] == 'offer' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
local publish = 'PUBLISH'
if ARGV[6] == 'SPUBLISH' then publish = 'SPUBLISH' end
local receivers = redis.call(publish, ARGV[4], ARGV[5])
if receivers == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  return -1
end
return receivers
)lua";

/// Claim (consumer). KEYS: consumer:<S>, claim:<id>, req:<id>, to:<id>. ARGV: S, a size in
/// bytes. Returns -1 when the session's own key is gone (heartbeat lapsed), 0 when the request
/// is gone, offered to another session (to:<id>, docs/routing.md) or claimed by someone else,
/// else it is now this session's alone and the script
/// returns its envelope (deleting it), or 1 when the envelope is larger than the size: the
/// session then fetches it with GETDEL (Lua would copy a 6 MB envelope twice). The claim
/// lives a minute longer than the request would have.
inline constexpr std::string_view claim_text = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[3])
if ttl < 0 then return 0 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ttl + 60000) then return 0 end
if redis.call('STRLEN', KEYS[3]) > tonumber(ARGV[2]) then return 1 end
local envelope = redis.call('GET', KEYS[3])
redis.call('DEL', KEYS[3])
return envelope
)lua";

/// Watch (forwarder, while the owner is unknown). KEYS: claim:<id>, req:<id>. ARGV: "1"
/// when the claim bound has passed, ttl ms of a cloud claim. Returns {2, owner} when
/// claimed, {0} when not claimed yet, {1} when the bound passed and the forwarder now owns
/// it as "cloud" (no consumer can claim it any more).
inline constexpr std::string_view watch_text = R"lua(
local owner = redis.call('GET', KEYS[1])
if owner then return {2, owner} end
if ARGV[1] ~= '1' then return {0} end
if redis.call('SET', KEYS[1], 'cloud', 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {1}
end
return {2, redis.call('GET', KEYS[1])}
)lua";

/// Sessions (forwarder): the presence view (docs/routing.md). KEYS: consumers. ARGV: the
/// prefix of a session's key ("funcie:{A}:consumer:"), the most sessions returned. Drops
/// expired sessions by server TIME and returns {S1, info1, S2, info2, ...} of the live ones
/// whose key exists (every key shares the app's hash tag, so one cluster slot holds them).
inline constexpr std::string_view sessions_text = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, ARGV[2])
local out = {}
for _, session in ipairs(members) do
  local info = redis.call('GET', ARGV[1] .. session)
  if info then
    out[#out + 1] = session
    out[#out + 1] = info
  end
end
return out
)lua";

/// Heartbeat (consumer). KEYS: consumers, consumer:<S>. ARGV: S, ttl ms, info JSON, "1" on
/// the first beat. Returns 0 (and changes nothing) when a later beat finds the session's
/// key gone: the session is over. The sorted set expires when its last member does.
inline constexpr std::string_view heartbeat_text = R"lua(
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local t = redis.call('TIME')
local ttl = tonumber(ARGV[2])
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
return 1
)lua";

/// Respond (consumer). KEYS: resp:<id>. ARGV: envelope, ttl ms.
inline constexpr std::string_view respond_text = R"lua(
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

/// Leave (consumer). KEYS: consumers, consumer:<S>. ARGV: S.
inline constexpr std::string_view leave_text = R"lua(
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
)lua";

/// The scripts with their SHA1, computed once.
struct scripts {
  script offer{"offer", offer_text, sha1_hex(offer_text)};
  script claim{"claim", claim_text, sha1_hex(claim_text)};
  script watch{"watch", watch_text, sha1_hex(watch_text)};
  script sessions{"sessions", sessions_text, sha1_hex(sessions_text)};
  script heartbeat{"heartbeat", heartbeat_text, sha1_hex(heartbeat_text)};
  script respond{"respond", respond_text, sha1_hex(respond_text)};
  script leave{"leave", leave_text, sha1_hex(leave_text)};
};
const scripts& all_scripts();

}  // namespace funcie::redis_backend

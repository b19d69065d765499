-- Search one session's messages, newest first: case-folded substring match over each
-- message's text (a string content, else its text parts joined, as Message.text) and
-- over the JSON text of each tool call's arguments, as stored. Never over JSON keys,
-- ids, roles, names or metadata. Refreshes no TTL (a search is not activity).
-- ARGV: 1 owner ('' = unchecked), 2 query (already folded by chatkeep.sessions.search),
-- 3 limit, 4 bound (records looked at, at most), 5 chunk (records per LRANGE).
-- Reply: {owner|false, created|false, records looked at, {matching records and sealed
-- candidates, newest first}}.
-- Bounded work: at most ARGV[4] records, read ARGV[5] at a time from the tail
-- (chatkeep.sessions.search.SEARCH_BOUND and SEARCH_CHUNK).
-- Folding: ASCII A-Z, and the one-to-one Unicode lower-case mappings of two-byte UTF-8
-- letters (Latin-1, Latin Extended, Greek, Cyrillic, Armenian...) listed in PAIRS as
-- upper/lower pairs; chatkeep.sessions.search folds the same way for the memory
-- backend and the fallback (it reads PAIRS from this file). Other characters (CJK,
-- three-byte letters such as the Kelvin sign, or special casings such as U+0130)
-- match as they are.
local PAIRS = table.concat({
  'ÀàÁáÂâÃãÄäÅåÆæÇçÈèÉéÊêËëÌìÍíÎîÏïÐðÑñÒòÓóÔôÕõÖöØøÙùÚúÛûÜüÝýÞþĀāĂă',
  'ĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįĲĳĴĵĶķĹĺĻļĽľĿŀŁłŃńŅņ',
  'ŇňŊŋŌōŎŏŐőŒœŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸÿŹźŻżŽžƁɓƂƃƄƅƆɔ',
  'ƇƈƉɖƊɗƋƌƎǝƏəƐɛƑƒƓɠƔɣƖɩƗɨƘƙƜɯƝɲƟɵƠơƢƣƤƥƦʀƧƨƩʃƬƭƮʈƯưƱʊƲʋƳƴƵƶƷʒƸƹƼƽ',
  'ǄǆǅǆǇǉǈǉǊǌǋǌǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǢǣǤǥǦǧǨǩǪǫǬǭǮǯǱǳǲǳǴǵǶƕǷƿǸǹǺǻǼǽǾǿ',
  'ȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȜȝȞȟȠƞȢȣȤȥȦȧȨȩȪȫȬȭȮȯȰȱȲȳȻȼȽƚɁɂɃƀɄʉɅʌ',
  'ɆɇɈɉɊɋɌɍɎɏͰͱͲͳͶͷͿϳΆάΈέΉήΊίΌόΎύΏώΑαΒβΓγΔδΕεΖζΗηΘθΙιΚκΛλΜμΝνΞξΟοΠπ',
  'ΡρΣσΤτΥυΦφΧχΨψΩωΪϊΫϋϏϗϘϙϚϛϜϝϞϟϠϡϢϣϤϥϦϧϨϩϪϫϬϭϮϯϴθϷϸϹϲϺϻϽͻϾͼϿͽЀѐЁё',
  'ЂђЃѓЄєЅѕІіЇїЈјЉљЊњЋћЌќЍѝЎўЏџАаБбВвГгДдЕеЖжЗзИиЙйКкЛлМмНнОоПпРрСс',
  'ТтУуФфХхЦцЧчШшЩщЪъЫыЬьЭэЮюЯяѠѡѢѣѤѥѦѧѨѩѪѫѬѭѮѯѰѱѲѳѴѵѶѷѸѹѺѻѼѽѾѿҀҁҊҋ',
  'ҌҍҎҏҐґҒғҔҕҖҗҘҙҚқҜҝҞҟҠҡҢңҤҥҦҧҨҩҪҫҬҭҮүҰұҲҳҴҵҶҷҸҹҺһҼҽҾҿӀӏӁӂӃӄӅӆӇӈӉӊ',
  'ӋӌӍӎӐӑӒӓӔӕӖӗӘәӚӛӜӝӞӟӠӡӢӣӤӥӦӧӨөӪӫӬӭӮӯӰӱӲӳӴӵӶӷӸӹӺӻӼӽӾӿԀԁԂԃԄԅԆԇԈԉԊԋ',
  'ԌԍԎԏԐԑԒԓԔԕԖԗԘԙԚԛԜԝԞԟԠԡԢԣԤԥԦԧԨԩԪԫԬԭԮԯԱաԲբԳգԴդԵեԶզԷէԸըԹթԺժԻիԼլԽխԾծ',
  'ԿկՀհՁձՂղՃճՄմՅյՆնՇշՈոՉչՊպՋջՌռՍսՎվՏտՐրՑցՒւՓփՔքՕօՖֆ',
})
local FOLD = {}
for i = 1, #PAIRS, 4 do FOLD[string.sub(PAIRS, i, i + 1)] = string.sub(PAIRS, i + 2, i + 3) end

local function fold(s)
  return string.lower((string.gsub(s, '[\194-\223][\128-\191]', FOLD)))
end

local function skip(s, i)
  return string.find(s, '[^ \t\r\n]', i) or (#s + 1)
end

-- The last index of the JSON string that starts at i; nil if it does not end.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then return nil end
    if string.byte(s, k) == 34 then return k end
    j = k + 2
  end
end

-- The last index of the JSON value that starts at i; nil if malformed.
local function value_end(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then return string_end(s, i) end
  if c ~= '{' and c ~= '[' then
    local k = string.find(s, '[,%]}]', i)
    if not k then return nil end
    return k - 1
  end
  local depth, j = 0, i
  while true do
    local k = string.find(s, '["{}%[%]]', j)
    if not k then return nil end
    local ch = string.sub(s, k, k)
    if ch == '"' then
      k = string_end(s, k)
      if not k then return nil end
    elseif ch == '{' or ch == '[' then
      depth = depth + 1
    else
      depth = depth - 1
      if depth == 0 then return k end
    end
    j = k + 1
  end
end

-- The span of the value of member `want` of the object at i (no escapes in `want`).
local function member(s, i, want)
  if string.sub(s, i, i) ~= '{' then return nil end
  i = skip(s, i + 1)
  while string.sub(s, i, i) == '"' do
    local key_end = string_end(s, i)
    if not key_end then return nil end
    local v = skip(s, skip(s, key_end + 1) + 1)  -- past the ':'
    local v_end = value_end(s, v)
    if not v_end then return nil end
    if string.sub(s, i + 1, key_end - 1) == want then return v, v_end end
    i = skip(s, v_end + 1)
    if string.sub(s, i, i) ~= ',' then return nil end
    i = skip(s, i + 1)
  end
  return nil
end

-- The spans of the elements of the array at i.
local function elements(s, i)
  local found = {}
  if string.sub(s, i, i) ~= '[' then return found end
  i = skip(s, i + 1)
  while i <= #s and string.sub(s, i, i) ~= ']' do
    local e = value_end(s, i)
    if not e then return found end
    found[#found + 1] = {i, e}
    i = skip(s, e + 1)
    if string.sub(s, i, i) ~= ',' then return found end
    i = skip(s, i + 1)
  end
  return found
end

-- The text of a decoded record's content, as Message.text joins it.
local function text_of(content)
  if type(content) == 'string' then return content end
  if type(content) ~= 'table' then return '' end
  local parts = {}
  for _, part in ipairs(content) do
    if type(part) == 'string' then
      parts[#parts + 1] = part
    elseif type(part) == 'table' and part['type'] == 'text' and type(part['text']) == 'string' then
      parts[#parts + 1] = part['text']
    end
  end
  return table.concat(parts)
end

local function matches(raw, query, fold)
  local folded = fold(raw)
  -- A record without escapes holds its text as is: if even the whole record does not
  -- contain the query, neither does its text (unless parts join into a match).
  if not string.find(folded, query, 1, true) and not string.find(raw, '\\', 1, true)
      and not string.find(raw, '"content":[', 1, true) then
    return false
  end
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' then return false end
  if string.find(fold(text_of(record['content'])), query, 1, true) then return true end
  if type(record['tool_calls']) ~= 'table' or #record['tool_calls'] == 0 then return false end
  local at, calls_end = member(raw, 1, 'tool_calls')
  if not at then return false end
  local calls = string.sub(raw, at, calls_end)
  for _, span in ipairs(elements(calls, 1)) do
    local call = string.sub(calls, span[1], span[2])
    local a, b = member(call, 1, 'arguments')
    if a and string.find(fold(string.sub(call, a, b)), query, 1, true) then return true end
  end
  return false
end

-- A sealed record (compressed or encrypted by its writer: a top-level "p" payload) is
-- sent as a candidate, not counted toward the limit: the client opens and matches it.
local function sealed(raw)
  if not string.find(raw, ',"p":"', 1, true) then return false end
  local ok, record = pcall(cjson.decode, raw)
  return ok and type(record) == 'table' and type(record['p']) == 'string'
end

local meta = redis.call('HMGET', KEYS[2], 'o', 'c')
if not owner_ok(meta[1], ARGV[1], meta[2] ~= false) then
  return redis.error_reply('CHATKEEP_OWNER')
end
local query, limit = ARGV[2], tonumber(ARGV[3])
-- Folding keeps every character's length and maps no two-byte letter to ASCII, so an
-- ASCII query is found in fold(s) exactly where it is found in string.lower(s), which
-- is four times faster.
local folding = fold
if not string.find(query, '[\128-\255]') then folding = string.lower end
local bound, chunk = tonumber(ARGV[4]), tonumber(ARGV[5])
local found, seen, matched = {}, 0, 0
local stop = -1  -- the newest record not yet looked at, from the end
while seen < bound and matched < limit do
  local size = math.min(chunk, bound - seen)
  local items = redis.call('LRANGE', KEYS[1], stop - size + 1, stop)
  for i = #items, 1, -1 do
    if matches(items[i], query, folding) then
      found[#found + 1] = items[i]
      matched = matched + 1
      if matched >= limit then break end
    elseif sealed(items[i]) then
      found[#found + 1] = items[i]
    end
  end
  seen = seen + #items
  if #items < size then break end
  stop = stop - size
end
return {meta[1], meta[2], seen, found}

// Routes (docs/routing.md): what `funcie connect --route` accepts, what it refuses and
// where, which invocations a route takes, and which session an invocation goes to.
#include "tunnel/route.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tun = funcie::tunnel;
using op = tun::route_term::op;
using source = tun::route_term::source;

namespace {

constexpr std::string_view api_event = R"({
  "version": "2.0",
  "rawPath": "/orders/7",
  "headers": {"x-dev": "ada", "x-team": "ops and infra", "x-quote": "say \"hi\""},
  "requestContext": {"http": {"method": "POST", "path": "/orders/7"}},
  "count": 42, "ratio": 0.5, "big": 18446744073709551615, "flag": true, "none": null,
  "a/b": {"c~d": "escaped"}
})";

bool holds(std::string_view route_text, std::string_view event = api_event,
           std::string_view context = "", std::string_view id = "request-1") {
  tun::routed_invocation inv(id, event, context);
  return inv.holds(tun::parse_route(route_text));
}

}  // namespace

TEST(Route, ParsesEachKindOfTerm) {
  const tun::route r = tun::parse_route(
      R"(/headers/x-dev=ada  /rawPath^=/orders	context:/custom/dev!=bob sample=0.25 event:/n="a b")");
  ASSERT_EQ(r.terms.size(), 5u);
  EXPECT_EQ(r.terms[0], (tun::route_term{op::equals, source::event, "/headers/x-dev", "ada", 0}));
  EXPECT_EQ(r.terms[1], (tun::route_term{op::prefix, source::event, "/rawPath", "/orders", 0}));
  EXPECT_EQ(r.terms[2],
            (tun::route_term{op::differs, source::client_context, "/custom/dev", "bob", 0}));
  EXPECT_EQ(r.terms[3].kind, op::sample);
  EXPECT_DOUBLE_EQ(r.terms[3].fraction, 0.25);
  EXPECT_EQ(r.terms[4], (tun::route_term{op::equals, source::event, "/n", "a b", 0}));
}

TEST(Route, TextRoundTrips) {
  for (const char* text : {"/headers/x-dev=ada", R"(/headers/x-team="ops and infra")",
                           R"(/q="say \"hi\"" "/a=b"^=x)", R"(/e="")", R"(/v="a\"b")", "sample=1",
                           "context:/custom/dev=ada sample=0.5", R"(/p=a=b)", "/a~1b/c~0d=x"}) {
    const tun::route r = tun::parse_route(text);
    EXPECT_EQ(tun::parse_route(tun::to_string(r)), r) << text << " -> " << tun::to_string(r);
  }
  EXPECT_EQ(tun::to_string(tun::parse_route(R"(  /a="plain"   sample=0.50 )")),
            "/a=plain sample=0.5");
}

struct refused {
  std::string text;
  std::size_t column;
  std::string says;
};

TEST(Route, RefusesWithTheColumnAndWhatIsAccepted) {
  const std::vector<refused> cases = {
      {"", 1, "the route is empty"},
      {"   ", 1, "the route is empty"},
      {"headers/x-dev=ada", 1, "JSON pointer starting with '/'"},
      {"/headers/x-dev", 15, "expected '=', '^=' or '!=' after the JSON pointer /headers/x-dev"},
      {"/a=b /c", 8, "expected '=', '^=' or '!='"},
      {"/a=", 4, "expected a value"},
      {"/a~2=x", 1, "~0"},
      {R"(/a="open)", 4, "this quote is not closed"},
      {R"(/a="x"y)", 7, "expected a space"},
      {R"(/a=x"y)", 5, "written in quotes"},
      {"sample=0", 8, "above 0 and at most 1"},
      {"sample=1.5", 8, "above 0 and at most 1"},
      {"sample=half", 8, "above 0 and at most 1"},
      {"/a=b\n/c=d", 5, "control character"},
      {std::string(1025, 'x'), 1025, "at most 1024 bytes"},
  };
  for (const refused& c : cases) {
    try {
      tun::parse_route(c.text);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const tun::route_error& e) {
      EXPECT_EQ(e.column(), c.column) << c.text << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
  }
  std::string many;
  for (int i = 0; i < 17; ++i) many += "/a=b ";
  try {
    tun::parse_route(many);
    ADD_FAILURE() << "17 terms accepted";
  } catch (const tun::route_error& e) {
    EXPECT_EQ(e.column(), 16u * 5 + 1);
    EXPECT_NE(std::string(e.what()).find("at most 16 terms"), std::string::npos) << e.what();
  }
}

TEST(Route, MatchesTheEvent) {
  EXPECT_TRUE(holds("/headers/x-dev=ada"));
  EXPECT_FALSE(holds("/headers/x-dev=bob"));
  EXPECT_FALSE(holds("/headers/X-Dev=ada")) << "keys are compared as written";
  EXPECT_TRUE(holds(R"(/headers/x-team="ops and infra")"));
  EXPECT_TRUE(holds(R"(/headers/x-quote="say \"hi\"")"));
  EXPECT_TRUE(holds("/requestContext/http/path^=/orders"));
  EXPECT_FALSE(holds("/requestContext/http/path^=/users"));
  EXPECT_FALSE(holds("/requestContext^=/orders")) << "a prefix of an object is nothing";
  EXPECT_TRUE(holds("/count=42"));
  EXPECT_FALSE(holds("/count=42.5"));
  EXPECT_FALSE(holds("/count=\"42x\""));
  EXPECT_TRUE(holds("/ratio=0.5"));
  EXPECT_TRUE(holds("/big=18446744073709551615"));
  EXPECT_TRUE(holds("/flag=true"));
  EXPECT_TRUE(holds("/none=null"));
  EXPECT_TRUE(holds("/a~1b/c~0d=escaped"));
  EXPECT_TRUE(holds("/headers/x-dev=ada /requestContext/http/method=POST"));
  EXPECT_FALSE(holds("/headers/x-dev=ada /requestContext/http/method=GET")) << "every term";
  EXPECT_TRUE(holds("/missing!=x")) << "!= holds when the value is missing";
  EXPECT_TRUE(holds("/headers/x-dev!=bob"));
  EXPECT_FALSE(holds("/headers/x-dev!=ada"));
  EXPECT_FALSE(holds("/headers/x-dev=ada", "not json")) << "an event that is not JSON";
  EXPECT_TRUE(holds("/a!=b", "not json"));
  EXPECT_FALSE(holds("/x=1", std::string(100, '[') + "1" + std::string(100, ']')))
      << "too deep is not JSON here";
}

TEST(Route, MatchesTheClientContext) {
  constexpr std::string_view context = R"({"custom":{"dev":"ada"},"client":{"app_title":"shop"}})";
  EXPECT_TRUE(holds("context:/custom/dev=ada", api_event, context));
  EXPECT_FALSE(holds("context:/custom/dev=ada", api_event, ""));
  EXPECT_FALSE(holds("context:/headers/x-dev=ada", api_event, context))
      << "context: looks in the client context, not the event";
}

TEST(Route, SamplesTheSameWayEverywhere) {
  int taken = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string id = "req-" + std::to_string(i);
    const bool first = holds("sample=0.25", "{}", "", id);
    EXPECT_EQ(first, holds("sample=0.25", "{}", "", id)) << "the same request, the same answer";
    taken += first ? 1 : 0;
  }
  EXPECT_GT(taken, 800);
  EXPECT_LT(taken, 1200);
  EXPECT_TRUE(holds("sample=1", "{}", "", "any"));
}

TEST(Route, ChoosesARoutedSessionThenAnUnroutedOneThenNobody) {
  const std::vector<tun::route> ada = {tun::parse_route("/headers/x-dev=ada")};
  const std::vector<tun::route> bob = {tun::parse_route("/headers/x-dev=bob"),
                                       tun::parse_route("/rawPath^=/bob")};
  auto choose = [](std::vector<tun::route_candidate> sessions, std::string_view event,
                   std::uint64_t tie = 0) {
    tun::routed_invocation inv("id", event, "");
    return tun::choose_session(sessions, inv, tie);
  };
  const std::string to_ada = R"({"headers":{"x-dev":"ada"}})";
  const std::string to_bob = R"({"rawPath":"/bob/1"})";
  const std::string to_nobody = R"({"headers":{"x-dev":"eve"}})";

  EXPECT_EQ(choose({{ada, 5}, {bob, 0}, {{}, 0}}, to_ada), 0u) << "routed, even when busier";
  EXPECT_EQ(choose({{ada, 0}, {bob, 0}, {{}, 0}}, to_bob), 1u) << "any of a session's routes";
  EXPECT_EQ(choose({{ada, 0}, {bob, 0}, {{}, 3}}, to_nobody), 2u) << "nobody's: the unrouted";
  EXPECT_EQ(choose({{ada, 0}, {bob, 0}}, to_nobody), std::nullopt) << "no taker: the cloud";
  EXPECT_EQ(choose({}, to_ada), std::nullopt);
  EXPECT_EQ(choose({{{}, 2}, {{}, 1}, {{}, 4}}, "{}"), 1u) << "fewest in flight";
  EXPECT_EQ(choose({{{}, 1}, {{}, 1}, {{}, 1}}, "{}", 0), 0u);
  EXPECT_EQ(choose({{{}, 1}, {{}, 1}, {{}, 1}}, "{}", 4), 1u) << "ties broken by the random";
  EXPECT_EQ(choose({{ada, 1}, {ada, 0}}, to_ada), 1u);
}

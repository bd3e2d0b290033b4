#include "project/project.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace funcie::project;
namespace fs = std::filesystem;

namespace {

/// A fresh directory per test, removed afterwards; funcie.toml is written in it.
class ProjectFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "funcie-project-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = fs::canonical(pattern);
    file_ = (dir_ / "funcie.toml").string();
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Creates `relative` (and its parents) holding `text`.
  void write(const std::string& relative, const std::string& text) {
    const auto path = dir_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  void make_dir(const std::string& relative) { fs::create_directories(dir_ / relative); }

  project parse(const std::string& text) { return parse_project(text, file_); }

  /// The message parse_project throws for `text` (fails the test when it accepts it).
  std::string error_of(const std::string& text) {
    try {
      parse(text);
    } catch (const project_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return {};
  }

  /// "FILE:LINE:COLUMN: " for this test's file.
  std::string at(int line, int column) const {
    return file_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  }

  std::string in_dir(const std::string& relative) const { return (dir_ / relative).string(); }

  fs::path dir_;
  std::string file_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

constexpr const char* backend_line = "backend = \"redis://localhost:6379\"\n";

}  // namespace

TEST_F(ProjectFile, EveryKeyGivesTheExpectedSpecs) {
  write("certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
  write("certs/other.pem", "-----BEGIN CERTIFICATE-----\n");
  write("services/orders/index.mjs", "export const handler = async () => 1;\n");
  make_dir("services/orders/src");
  const auto p = parse(R"(# defaults
backend = "redis://localhost:6379"
concurrency = 4
hold = true
forward_credentials = true
heartbeat_ms = 5000
ca_file = "certs/ca.pem"
tls_verify = false

[functions.orders]
app = "orders-dev"
command = ["node", "node_modules/.bin/aws-lambda-ric", "index.handler"]
dir = "services/orders"
watch = ["src", "index.mjs"]
env = { TABLE = "orders-dev", RETRIES = 3, DEBUG = true }
backend = "rediss://:secret@broker.example:6380/2"
concurrency = 2
hold = false
forward_credentials = false
heartbeat_ms = 1000
ca_file = "certs/other.pem"
tls_verify = true

[functions.billing]
command = ["./bootstrap"]
)");
  EXPECT_EQ(p.path, file_);
  ASSERT_EQ(p.functions.size(), 2u);

  // In the file's order, not by name.
  const auto& orders = p.functions[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.app, "orders-dev");
  EXPECT_EQ(orders.backend, "rediss://:secret@broker.example:6380/2");
  EXPECT_EQ(orders.command, (std::vector<std::string>{"node", "node_modules/.bin/aws-lambda-ric",
                                                      "index.handler"}));
  EXPECT_EQ(orders.directory, in_dir("services/orders"));
  EXPECT_EQ(orders.watch, (std::vector<std::string>{in_dir("services/orders/src"),
                                                    in_dir("services/orders/index.mjs")}));
  EXPECT_EQ(orders.environment, (std::map<std::string, std::string>{
                                    {"TABLE", "orders-dev"}, {"RETRIES", "3"}, {"DEBUG", "true"}}));
  EXPECT_EQ(orders.concurrency, 2u);
  EXPECT_FALSE(orders.hold);
  EXPECT_FALSE(orders.forward_credentials);
  EXPECT_EQ(orders.heartbeat, std::chrono::milliseconds(1000));
  EXPECT_EQ(orders.ca_file, in_dir("certs/other.pem"));
  EXPECT_TRUE(orders.tls_verify);

  const auto& billing = p.functions[1];
  EXPECT_EQ(billing.name, "billing");
  EXPECT_EQ(billing.app, "billing");
  EXPECT_EQ(billing.backend, "redis://localhost:6379");
  EXPECT_EQ(billing.command, std::vector<std::string>{"./bootstrap"});
  EXPECT_EQ(billing.directory, dir_.string());
  EXPECT_TRUE(billing.watch.empty());
  EXPECT_TRUE(billing.environment.empty());
  EXPECT_EQ(billing.concurrency, 4u);
  EXPECT_TRUE(billing.hold);
  EXPECT_TRUE(billing.forward_credentials);
  EXPECT_EQ(billing.heartbeat, std::chrono::milliseconds(5000));
  EXPECT_EQ(billing.ca_file, in_dir("certs/ca.pem"));
  EXPECT_FALSE(billing.tls_verify);
}

TEST_F(ProjectFile, DefaultsAreInheritedAndOverridden) {
  write("ca.pem", "pem\n");
  const auto p = parse(R"(backend = "redis://top:6379"
concurrency = 7
ca_file = "ca.pem"

[functions.a]
command = ["a"]

[functions.b]
command = ["b"]
backend = "redis://own:6379"
concurrency = 1
ca_file = ""
)");
  ASSERT_EQ(p.functions.size(), 2u);
  const auto& a = p.functions[0];
  EXPECT_EQ(a.backend, "redis://top:6379");
  EXPECT_EQ(a.concurrency, 7u);
  EXPECT_EQ(a.ca_file, in_dir("ca.pem"));
  // What nothing sets is function_spec's default.
  EXPECT_FALSE(a.hold);
  EXPECT_FALSE(a.forward_credentials);
  EXPECT_EQ(a.heartbeat, std::chrono::milliseconds(3000));
  EXPECT_TRUE(a.tls_verify);
  const auto& b = p.functions[1];
  EXPECT_EQ(b.backend, "redis://own:6379");
  EXPECT_EQ(b.concurrency, 1u);
  EXPECT_EQ(b.ca_file, "");  // "" overrides the top-level file: the system's CAs.
}

TEST_F(ProjectFile, NoDefaultsAtAllWhenEachFunctionHasItsOwnBackend) {
  const auto p = parse("[functions.a]\nbackend = \"redis://h:1\"\ncommand = \"x\"\n");
  ASSERT_EQ(p.functions.size(), 1u);
  EXPECT_EQ(p.functions[0].concurrency, 10u);
}

TEST_F(ProjectFile, StringCommandRunsThroughShExec) {
  const auto p = parse(std::string(backend_line) +
                       "[functions.a]\ncommand = \"node index.mjs --port $PORT\"\n");
  EXPECT_EQ(p.functions.at(0).command,
            (std::vector<std::string>{"/bin/sh", "-c", "exec node index.mjs --port $PORT"}));
}

TEST_F(ProjectFile, WrongTypeNamesLineColumnAndValue) {
  EXPECT_EQ(error_of(std::string(backend_line) +
                     "[functions.orders]\ncommand = [\"x\"]\nconcurrency = \"4\"\n"),
            at(4, 15) + "'concurrency' must be an integer from 1 to 1000 (got \"4\")");
  EXPECT_EQ(error_of("concurrency = 0\n"),
            at(1, 15) + "'concurrency' must be an integer from 1 to 1000 (got 0)");
  EXPECT_EQ(error_of("heartbeat_ms = 299\n"),
            at(1, 16) + "'heartbeat_ms' must be an integer from 300 to 60000 (got 299)");
  EXPECT_EQ(error_of("heartbeat_ms = 60001\n"),
            at(1, 16) + "'heartbeat_ms' must be an integer from 300 to 60000 (got 60001)");
  EXPECT_EQ(error_of("hold = \"yes\"\n"), at(1, 8) + "'hold' must be true or false (got \"yes\")");
  EXPECT_EQ(error_of("tls_verify = 1\n"), at(1, 14) + "'tls_verify' must be true or false (got 1)");
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions.a]\ncommand = [\"node\", 5]\n"),
            at(3, 20) + "'command' must be an array of strings: element 2 is 5; quote it");
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions.a]\ncommand = []\n"),
            at(3, 11) +
                "'command' is empty: give the program that runs the handler, e.g. command = "
                "[\"node\", \"index.mjs\"] or \"./bootstrap\"");
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\napp = 3\n"),
      at(4, 7) + "'app' must be a string of 1 to 64 letters, digits, '.', '_' or '-' (got 3)");
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\napp = \"a b\"\n"),
            at(4, 7) + "'app' must be 1 to 64 letters, digits, '.', '_' or '-' (got \"a b\")");
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\nwatch = \"src\"\n"),
      at(4, 9) + "'watch' must be an array of paths, e.g. watch = [\"src\"] (got \"src\")");
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\nenv = 1\n"),
            at(4, 7) + "'env' must be a table, e.g. env = { TABLE = \"orders-dev\" } (got 1)");
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\nenv = { A = 1.5 }\n"),
      at(4, 13) + "env value 'A' must be a string, an integer or a boolean (got 1.5); quote it");
}

TEST_F(ProjectFile, SyntaxErrorsGiveTheParsersMessageAndPosition) {
  const auto error = error_of("backend = \"redis://h:1\"\nconcurrency = \n");
  EXPECT_TRUE(error.starts_with(at(2, 15) + "Error while parsing key-value pair")) << error;
  EXPECT_TRUE(contains(error, "fix the TOML there")) << error;

  const auto redefined = error_of("hold = true\nhold = false\n");
  EXPECT_TRUE(redefined.starts_with(at(2, 8))) << redefined;
  EXPECT_TRUE(contains(redefined, "hold")) << redefined;
}

TEST_F(ProjectFile, AFileThatIsNotTomlIsRefusedWithAPosition) {
  const auto json = error_of("{\"functions\": {\"a\": {\"command\": \"x\"}}}\n");
  EXPECT_TRUE(json.starts_with(at(1, 1) + "Error while parsing")) << json;

  const auto binary =
      error_of(std::string("\x7f"
                           "ELF\x02\x01\x01\0\xff\xfe",
                           10));
  EXPECT_TRUE(binary.starts_with(file_ + ":1:")) << binary;
}

TEST_F(ProjectFile, AnEmptyFileHasNoFunctions) {
  EXPECT_EQ(error_of(""), file_ + ": no functions: add a [functions.NAME] table");
  EXPECT_EQ(error_of("# just a comment\nbackend = \"redis://h:1\"\n"),
            file_ + ": no functions: add a [functions.NAME] table");
  EXPECT_EQ(error_of("[functions]\n"), at(1, 1) + "no functions: add a [functions.NAME] table");
}

TEST_F(ProjectFile, UnknownKeysAreRefusedWithASuggestion) {
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\nconcurency = 4\n"),
      at(4, 1) + "unknown key 'concurency' in [functions.a]; did you mean 'concurrency'?");
  EXPECT_EQ(error_of("bakend = \"redis://h:1\"\n"),
            at(1, 1) + "unknown key 'bakend' at the top level; did you mean 'backend'?");
  EXPECT_EQ(error_of("Hold = true\n"),
            at(1, 1) + "unknown key 'Hold' at the top level; did you mean 'hold'?");
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\ntls_verfiy = 1\n"),
      at(4, 1) + "unknown key 'tls_verfiy' in [functions.a]; did you mean 'tls_verify'?");

  const auto far =
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\nmemory = 1\n");
  EXPECT_TRUE(far.starts_with(at(4, 1) + "unknown key 'memory' in [functions.a]; remove it (the "
                                         "keys here are app, command, dir"))
      << far;

  EXPECT_EQ(error_of("command = \"x\"\n"),
            at(1, 1) +
                "'command' is a key of a function, not of the whole file: move it into a "
                "[functions.NAME] table");
}

TEST_F(ProjectFile, TwoFunctionsWithOneAppAreRefused) {
  EXPECT_EQ(error_of(std::string(backend_line) + R"([functions.a]
command = "x"
app = "shared"

[functions.b]
command = "y"
app = "shared"
)"),
            at(8, 7) +
                "function 'b' uses app 'shared' like function 'a' (line 4): they would compete "
                "for the same requests; give one of them another app = \"...\"");
  // An app defaults to the name, so a name can clash with another's app.
  EXPECT_EQ(error_of(std::string(backend_line) + R"([functions.a]
command = "x"

[functions.b]
command = "y"
app = "a"
)"),
            at(7, 7) +
                "function 'b' uses app 'a' like function 'a' (line 2): they would compete "
                "for the same requests; give one of them another app = \"...\"");
}

TEST_F(ProjectFile, EveryFunctionNeedsACommandButTheBackendMayComeFromOutside) {
  // A backend URL may carry a password: it can stay out of the file (FUNCIE_BACKEND).
  EXPECT_EQ(parse("[functions.a]\ncommand = \"x\"\n").functions.at(0).backend, "");
  EXPECT_EQ(error_of(std::string(backend_line) + "\n[functions.a]\nconcurrency = 2\n"),
            at(3, 1) +
                "function 'a' has no command: add command = [\"PROGRAM\", \"ARG\", ...] (what "
                "runs the handler, e.g. [\"./bootstrap\"]) to [functions.a]");
}

TEST_F(ProjectFile, EnvironmentKeysAreCheckedAsLambdaDoes) {
  EXPECT_EQ(
      error_of(std::string(backend_line) +
               "[functions.a]\ncommand = \"x\"\nenv = { A = \"1\", AWS_REGION = \"eu\" }\n"),
      at(4, 18) +
          "env key 'AWS_REGION' is reserved by Lambda and set by funcie; rename or remove it");
  EXPECT_EQ(error_of(std::string(backend_line) +
                     "[functions.a]\ncommand = \"x\"\n[functions.a.env]\n1X = \"v\"\n"),
            at(5, 1) +
                "env key '1X' must start with a letter and hold only letters, digits and '_'; "
                "rename or remove it");
  EXPECT_EQ(error_of(std::string(backend_line) +
                     "[functions.a]\ncommand = \"x\"\nenv = { \"A=B\" = \"v\" }\n"),
            at(4, 9) +
                "env key 'A=B' must start with a letter and hold only letters, digits and '_'; "
                "rename it");
}

TEST_F(ProjectFile, FunctionNamesAndTablesAreChecked) {
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions.\"a b\"]\ncommand = \"x\"\n"),
            at(2, 12) +
                "function name 'a b' must be 1 to 64 letters, digits, '.', '_' or '-'; rename it");
  EXPECT_EQ(error_of(std::string(backend_line) + "[[functions]]\ncommand = \"x\"\n"),
            at(2, 1) +
                "'functions' must be a table of functions (got an array): write each one as "
                "[functions.NAME]");
  EXPECT_EQ(error_of(std::string(backend_line) + "[functions]\na = \"x\"\n"),
            at(3, 5) +
                "'functions.a' must be a table (got \"x\"): write it as [functions.a] with a "
                "command");
}

TEST_F(ProjectFile, RelativePathsResolveAgainstTheFilesDirectory) {
  // The test runs elsewhere: relative paths must not depend on the current directory.
  ASSERT_NE(fs::current_path(), dir_);
  write("svc/handler.mjs", "");
  make_dir("svc/lib");
  write("tls/ca.pem", "pem\n");
  const auto p = parse(R"(backend = "rediss://h:6380"
ca_file = "tls/../tls/ca.pem"

[functions.a]
command = "x"
dir = "./svc/"
watch = ["handler.mjs", "lib", ")" +
                       in_dir("tls") + R"("]
)");
  const auto& a = p.functions.at(0);
  EXPECT_EQ(a.directory, in_dir("svc"));
  EXPECT_EQ(a.watch, (std::vector<std::string>{in_dir("svc/handler.mjs"), in_dir("svc/lib"),
                                               in_dir("tls")}));
  EXPECT_EQ(a.ca_file, in_dir("tls/ca.pem"));
}

TEST_F(ProjectFile, MissingPathsAreNamedAsWrittenAndAsResolved) {
  make_dir("svc");
  EXPECT_EQ(error_of(std::string(backend_line) +
                     "[functions.a]\ncommand = \"x\"\ndir = \"svc\"\nwatch = [\"src\"]\n"),
            at(5, 10) + "'watch' path 'src' (resolved to " + in_dir("svc/src") +
                ") does not exist; create it or fix the path (relative to the function's dir)");
  EXPECT_EQ(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\ndir = \"nope\"\n"),
      at(4, 7) + "'dir' path 'nope' (resolved to " + in_dir("nope") +
          ") does not exist; create it or fix the path (relative to the directory of "
          "funcie.toml)");
  write("file", "");
  EXPECT_TRUE(contains(
      error_of(std::string(backend_line) + "[functions.a]\ncommand = \"x\"\ndir = \"file\"\n"),
      "'dir' path 'file' (resolved to " + in_dir("file") + ") is not a directory"));
  EXPECT_EQ(error_of("ca_file = \"certs/ca.pem\"\n"),
            at(1, 11) + "'ca_file' path 'certs/ca.pem' (resolved to " + in_dir("certs/ca.pem") +
                ") does not exist; create it or fix the path (relative to the directory of "
                "funcie.toml)");
  EXPECT_TRUE(contains(error_of("ca_file = \".\"\n"), "is a directory"));
  // A NUL would cut the path short when the system checks it.
  EXPECT_EQ(error_of(std::string(backend_line) +
                     "[functions.a]\ncommand = \"x\"\nwatch = [\"svc\\u0000x\"]\n"),
            at(4, 10) + "'watch' path 'svc\\x00x' holds a NUL character (\\u0000); remove it");
}

TEST_F(ProjectFile, BackendErrorsNeverShowThePassword) {
  for (const std::string url : {"redis://:hunter2@host:notaport", "http://user:hunter2@host",
                                "user:hunter2@host", "redis://user:hunter2@"}) {
    const auto error = error_of("backend = \"" + url + "\"\n[functions.a]\ncommand = \"x\"\n");
    EXPECT_TRUE(error.starts_with(at(1, 11) + "'backend'")) << error;
    EXPECT_FALSE(contains(error, "hunter2")) << error;
  }
  EXPECT_EQ(error_of("backend = 6379\n"),
            at(1, 11) +
                "'backend' must be a broker URL string, e.g. backend = "
                "\"redis://localhost:6379\" or \"sqs://\" (got 6379)");
}

TEST_F(ProjectFile, FindProjectWalksUpFromANestedDirectory) {
  write("funcie.toml", "");
  make_dir("a/b/c");
  EXPECT_EQ(find_project(in_dir("a/b/c")), file_);
  EXPECT_EQ(find_project(dir_.string()), file_);
  // The nearest one wins.
  write("a/funcie.toml", "");
  EXPECT_EQ(find_project(in_dir("a/b/c")), in_dir("a/funcie.toml"));
  EXPECT_EQ(find_project(in_dir("a/b/c/../..")), in_dir("a/funcie.toml"));
  // A directory named funcie.toml is not a project file.
  fs::remove(dir_ / "a/funcie.toml");
  make_dir("a/b/funcie.toml");
  EXPECT_EQ(find_project(in_dir("a/b/c")), file_);
}

TEST_F(ProjectFile, FindProjectGivesNothingWhenNoParentHasOne) {
  make_dir("x/y");
  const auto found = find_project(in_dir("x/y"));
  // Only a funcie.toml above the temporary directory (not ours) could be found.
  if (found) {
    EXPECT_FALSE(found->starts_with(dir_.string())) << *found;
  } else {
    EXPECT_FALSE(found.has_value());
  }
}

TEST_F(ProjectFile, LoadProjectReadsTheFile) {
  write("funcie.toml", std::string(backend_line) + "[functions.a]\ncommand = \"x\"\n");
  const auto p = load_project(file_);
  EXPECT_EQ(p.path, file_);
  ASSERT_EQ(p.functions.size(), 1u);
  EXPECT_EQ(p.functions[0].directory, dir_.string());

  try {
    load_project(in_dir("missing.toml"));
    ADD_FAILURE() << "read a missing file";
  } catch (const project_error& e) {
    EXPECT_EQ(
        std::string(e.what()),
        in_dir("missing.toml") + ": cannot read it: No such file or directory; check the path");
  }
  try {
    load_project(dir_.string());
    ADD_FAILURE() << "read a directory";
  } catch (const project_error& e) {
    EXPECT_EQ(std::string(e.what()),
              dir_.string() + ": not a regular file; give the path of a funcie.toml file");
  }
}

TEST_F(ProjectFile, SecretFileAndEncryptGiveTheBackendItsKeys) {
  write("keys/orders.secret", "a secret of thirty-two characters\nlast month's secret value\n");
  const auto p = parse(R"(backend = "redis://localhost:6379"
secret_file = "keys/orders.secret"

[functions.orders]
command = "x"

[functions.billing]
command = "x"
secret_file = ""
encrypt = false
)");
  const auto& orders = p.functions.at(0);
  const auto& billing = p.functions.at(1);
  EXPECT_EQ(orders.secret_file, in_dir("keys/orders.secret"));
  EXPECT_TRUE(orders.encrypt);
  EXPECT_EQ(billing.secret_file, "");
  EXPECT_FALSE(billing.encrypt);

  const auto keys = backend_options_of(orders).keys;
  EXPECT_TRUE(keys.enabled());
  EXPECT_EQ(keys.key_ids().size(), 2u);
  const auto same = funcie::tunnel::keyring::from_secrets("a secret of thirty-two characters");
  EXPECT_EQ(keys.current_key_id(), same.current_key_id());

  EXPECT_TRUE(contains(error_of("secret_file = \"keys/missing.secret\"\n"), "keys/missing.secret"));
  EXPECT_TRUE(contains(error_of("encrypt = \"no\"\n"), "encrypt"));
}

TEST(ProjectRoutes, ARouteOrAListOfAlternativesIsReadAndTheFunctionsOwnWins) {
  const auto p = parse_project(
      "backend = \"redis://localhost:6379\"\nroute = \"/headers/x-dev=ada\"\n"
      "[functions.a]\ncommand = [\"x\"]\n"
      "[functions.b]\ncommand = [\"x\"]\nroute = [\"context:/custom/dev=ada\", \"sample=0.5\"]\n",
      "/tmp/funcie.toml");
  ASSERT_EQ(p.functions.size(), 2u);
  EXPECT_EQ(p.functions[0].routes, std::vector<std::string>{"/headers/x-dev=ada"});
  EXPECT_EQ(p.functions[1].routes,
            (std::vector<std::string>{"context:/custom/dev=ada", "sample=0.5"}));
  EXPECT_EQ(backend_options_of(p.functions[1]).routes, p.functions[1].routes);
}

TEST(ProjectRoutes, ABadRouteIsRefusedWithTheLineAndTheRoutesColumn) {
  auto error_of = [](const std::string& text) {
    try {
      parse_project(text, "/tmp/funcie.toml");
    } catch (const project_error& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return std::string();
  };
  const std::string route_error = error_of("route = \"/dev=bob size>3\"\n");
  EXPECT_TRUE(route_error.starts_with("/tmp/funcie.toml:1:9: route '/dev=bob size>3': column 10: "))
      << route_error;
  EXPECT_TRUE(
      error_of("route = 5\n").starts_with("/tmp/funcie.toml:1:9: 'route' must be a string"));
  EXPECT_TRUE(error_of("route = []\n")
                  .starts_with("/tmp/funcie.toml:1:9: 'route' must be a route or an array"));
}

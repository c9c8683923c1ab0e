//! Every kind of validation error, with its exact line and column.

use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::site::SiteConfig;
use pipeline::{Graph, Registry, StreamKind};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Src {
    host: String,
    #[serde(default)]
    port: u16,
}
impl NodeConfig for Src {
    const TYPE: &'static str = "src";
    const ROLE: Role = Role::Source;
    const ABOUT: &'static str = "test source";
}
impl Node for Src {
    /// As if it served on `host:port` (port 0: any free one).
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![(
            "port".into(),
            Resource::Listen(format!("{}:{}", self.host, self.port)),
        )]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Messages)
    }
    fn build<'s>(
        &self,
        _: &BuildContext<'s>,
        _: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        unreachable!("validation only")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    #[allow(dead_code)]
    interval: u64,
    #[serde(default)]
    #[allow(dead_code)]
    limits: Vec<f64>,
}
impl NodeConfig for Count {
    const TYPE: &'static str = "count";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "test operator";
}
impl Node for Count {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Table)
    }
    fn build<'s>(
        &self,
        _: &BuildContext<'s>,
        _: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        unreachable!("validation only")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Out {
    path: String,
}
impl NodeConfig for Out {
    const TYPE: &'static str = "out";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str = "test sink";
}
impl Node for Out {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![(
            "path".into(),
            Resource::file(std::path::Path::new(&self.path)),
        )]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        pipeline::operator::check_relative_file("path", std::path::Path::new(&self.path))
            .into_iter()
            .collect()
    }
    fn build<'s>(
        &self,
        _: &BuildContext<'s>,
        _: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        unreachable!("validation only")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relay {}
impl NodeConfig for Relay {
    const TYPE: &'static str = "relay";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "test pass-through";
}
impl Node for Relay {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Messages)
    }
    fn build<'s>(
        &self,
        _: &BuildContext<'s>,
        _: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        unreachable!("validation only")
    }
}

/// A sink configured by a whole site-config section (like `alerts_notify`
/// with `alerts = "@config.Alerts"`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sect {
    section: Section,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[allow(dead_code)]
    level: u32,
    #[serde(default)]
    route: Vec<SectRoute>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SectRoute {
    name: String,
    #[allow(dead_code)]
    port: u16,
}
impl NodeConfig for Sect {
    const TYPE: &'static str = "sect";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str = "test sink with a section";
}
impl Node for Sect {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        let r = &self.section.route;
        (1..r.len())
            .filter(|&i| r[..i].iter().any(|o| o.name == r[i].name))
            .map(|i| {
                (
                    format!("section.route[{i}].name"),
                    format!("duplicate route `{}`", r[i].name),
                )
            })
            .collect()
    }
    fn build<'s>(
        &self,
        _: &BuildContext<'s>,
        _: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        unreachable!("validation only")
    }
}

fn registry() -> Registry {
    Registry::new()
        .with::<Src>()
        .with::<Count>()
        .with::<Out>()
        .with::<Relay>()
        .with::<Sect>()
}

fn site() -> SiteConfig {
    SiteConfig::parse(
        "site.toml",
        "[env]\nKNOWN = \"x\"\n[Rates]\ninterval = 10\nname = \"n\"\n".into(),
        ".".into(),
    )
    .unwrap()
}

/// `file:line:column: path: message` of every error.
fn errors(text: &str) -> Vec<String> {
    match Graph::parse("g.toml", text, &site(), &registry()) {
        Ok(_) => vec![],
        Err(d) => d.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn ok(text: &str) -> Graph {
    Graph::parse("g.toml", text, &site(), &registry()).unwrap_or_else(|d| panic!("{d}"))
}

const GOOD: &str = r#"[nodes.a]
type = "src"
host = "h"

[nodes.b]
type = "count"
inputs = ["a"]
interval = 5

[nodes.c]
type = "out"
inputs = ["b"]
path = "x.csv"
"#;

#[test]
fn a_good_graph_validates_in_topological_order() {
    let g = ok(GOOD);
    let names: Vec<_> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn syntax_error() {
    let e = errors("[nodes.a]\ntype = \"src\"\nhost = \n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("g.toml:3:"), "{e:?}");
}

#[test]
fn unknown_key_points_at_the_key() {
    let e = errors(&GOOD.replace("interval = 5", "interval = 5\nintervall = 6"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("g.toml:9:1: nodes.b.intervall: unknown field `intervall`"),
        "{e:?}"
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let e = errors(&GOOD.replace("interval = 5", "interval = \"five\""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "g.toml:8:12: nodes.b.interval: invalid type: string \"five\", expected u64"
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_type_inside_an_array() {
    let e = errors(&GOOD.replace("interval = 5", "interval = 5\nlimits = [1.0, \"x\"]"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("g.toml:9:16: nodes.b.limits[1]: invalid type: string"),
        "{e:?}"
    );
}

#[test]
fn missing_parameter_points_at_the_node() {
    let e = errors(&GOOD.replace("interval = 5\n", ""));
    assert_eq!(e, ["g.toml:5:8: nodes.b: missing field `interval`"]);
}

#[test]
fn unknown_type_lists_the_known_ones() {
    let e = errors(&GOOD.replace("type = \"count\"", "type = \"cuont\""));
    assert_eq!(e, ["g.toml:6:8: nodes.b.type: unknown node type `cuont`; known types: count, out, relay, sect, src"]);
}

#[test]
fn dangling_input() {
    let e = errors(&GOOD.replace("inputs = [\"a\"]", "inputs = [\"z\"]"));
    assert_eq!(
        e,
        ["g.toml:7:11: nodes.b.inputs: input `z` is not a node of this graph (nodes: a, b, c)"]
    );
}

#[test]
fn cycle_is_reported_on_every_node_of_it() {
    // a → r1 ⇄ r2 → b: r1 and r2 form the cycle; b and c are only downstream.
    let text = GOOD.replace("inputs = [\"a\"]", "inputs = [\"r2\"]")
        + "\n[nodes.r1]\ntype = \"relay\"\ninputs = [\"a\", \"r2\"]\n\n[nodes.r2]\ntype = \"relay\"\ninputs = [\"r1\"]\n";
    let e = errors(&text);
    assert_eq!(
        e,
        [
            "g.toml:17:10: nodes.r1.inputs: input cycle through nodes r1, r2",
            "g.toml:21:10: nodes.r2.inputs: input cycle through nodes r1, r2",
        ]
    );
}

#[test]
fn stream_kind_mismatch() {
    let e = errors(&GOOD.replace("inputs = [\"b\"]", "inputs = [\"a\"]"));
    assert_eq!(e, ["g.toml:12:11: nodes.c.inputs: stream kind mismatch: `a` (src) produces `messages`, but `c` (out) accepts table"]);
}

#[test]
fn a_sink_as_input() {
    let text = GOOD.to_string() + "\n[nodes.d]\ntype = \"out\"\ninputs = [\"c\"]\npath = \"y\"\n";
    assert_eq!(
        errors(&text),
        ["g.toml:17:11: nodes.d.inputs: `c` is a sink (out) and produces no stream"]
    );
}

#[test]
fn source_with_inputs_and_operator_without() {
    let text = GOOD
        .replace("host = \"h\"", "host = \"h\"\ninputs = [\"b\"]")
        .replace("inputs = [\"a\"]\n", "");
    let e = errors(&text);
    assert!(
        e.contains(
            &"g.toml:4:10: nodes.a.inputs: `src` is a source and takes no inputs".to_string()
        ),
        "{e:?}"
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e.contains(
            &"g.toml:6:8: nodes.b: missing `inputs` (an operator needs at least one input)"
                .to_string()
        ),
        "{e:?}"
    );
}

#[test]
fn undefined_variable_points_into_the_string() {
    let e = errors(&GOOD.replace("host = \"h\"", "host = \"tcp://${NO_SUCH_VAR_KM3}:1\""));
    assert_eq!(
        e,
        ["g.toml:3:15: nodes.a.host: undefined variable `NO_SUCH_VAR_KM3` (set it in the environment, in the site config's [env], or write `${NO_SUCH_VAR_KM3:-default}`)"]
    );
}

#[test]
fn variables_resolve_from_env_table_defaults_and_numbers() {
    ok(&GOOD.replace(
        "host = \"h\"",
        "host = \"${KNOWN}\"\nport = \"${NO_SUCH_PORT_KM3:-5553}\"",
    ));
}

#[test]
fn config_references_resolve_and_are_type_checked() {
    ok(&GOOD.replace("interval = 5", "interval = \"@config.Rates.interval\""));
    let e = errors(&GOOD.replace("interval = 5", "interval = \"@config.Rates.name\""));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("g.toml:8:12: nodes.b.interval: invalid type: string \"n\""),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("interval = 5", "interval = \"@config.Rates.intervl\""));
    assert_eq!(e, ["g.toml:8:12: nodes.b.interval: undefined site-config key `[Rates] intervl` (site config: site.toml)"]);
}

#[test]
fn node_checks_are_reported_at_their_key() {
    let e = errors(&GOOD.replace("path = \"x.csv\"", "path = \"/etc/x.csv\""));
    assert_eq!(e, ["g.toml:13:8: nodes.c.path: `/etc/x.csv` must be relative and stay under the output directory (--out)"]);
}

#[test]
fn sink_paths_that_cannot_be_written_are_refused_at_check_time() {
    let with = |p: &str| errors(&GOOD.replace("path = \"x.csv\"", &format!("path = \"{p}\"")));
    assert_eq!(
        with(""),
        ["g.toml:13:8: nodes.c.path: the path is empty: name a file under the output directory"]
    );
    for folder in [".", "data/", "data/."] {
        let e = with(folder);
        assert_eq!(e.len(), 1, "{folder}: {e:?}");
        assert!(e[0].starts_with("g.toml:13:8: nodes.c.path: "), "{e:?}");
        assert!(e[0].contains("names a folder, not a file"), "{e:?}");
    }
    let long = "d/".repeat(2100) + "x.csv";
    let e = with(&long);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("at most 4096 work"), "{e:?}");
    let e = with(&format!("{}.csv", "n".repeat(300)));
    assert!(e[0].contains("at most 255 work"), "{e:?}");
}

#[test]
fn nested_defaults_resolve_or_name_the_inner_variable() {
    ok(&GOOD.replace(
        "path = \"x.csv\"",
        "path = \"${NO_SUCH_A_KM3:-${NO_SUCH_B_KM3:-${KNOWN}}}.csv\"",
    ));
    // Used to write a file literally named `${NO_SUCH_B_KM3}`.
    let e = errors(&GOOD.replace(
        "path = \"x.csv\"",
        "path = \"${NO_SUCH_A_KM3:-${NO_SUCH_B_KM3}}\"",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("g.toml:13:") && e[0].contains("undefined variable `NO_SUCH_B_KM3`"),
        "{e:?}"
    );
}

#[test]
fn unknown_top_level_key() {
    let e = errors(&format!("nodez = 1\n{GOOD}"));
    assert_eq!(
        e,
        ["g.toml:1:1: nodez: unknown top-level key `nodez`, expected `graph` or `nodes`"]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = GOOD
        .replace("type = \"count\"", "type = \"count\"\nbogus = 1")
        .replace("inputs = [\"b\"]", "inputs = [\"q\"]")
        .replace("host = \"h\"", "host = \"${NOPE_KM3}\"");
    let e = errors(&text);
    assert_eq!(e.len(), 3, "{e:?}");
    // Sorted by position.
    assert!(e[0].starts_with("g.toml:3:"), "{e:?}");
    assert!(e[1].starts_with("g.toml:7:1: nodes.b.bogus"), "{e:?}");
    assert!(e[2].starts_with("g.toml:13:"), "{e:?}");
}

#[test]
fn validating_the_example_graph_is_fast() {
    let start = std::time::Instant::now();
    for _ in 0..10 {
        ok(GOOD);
    }
    assert!(start.elapsed() < std::time::Duration::from_millis(100 * 10));
}

const ROUTES: &str = "[Routes]\nlevel = 3\n\n[[Routes.route]]\nname = \"a\"\nport = 1\n\n[[Routes.route]]\nname = \"b\"\nport = 2\n";

fn section_errors(routes: &str, reference: &str) -> Vec<String> {
    let site = SiteConfig::parse("site.toml", routes.to_string(), ".".into()).unwrap();
    let graph = format!(
        "{GOOD}\n[nodes.d]\ntype = \"sect\"\ninputs = [\"b\"]\nsection = \"{reference}\"\n"
    );
    match Graph::parse("g.toml", &graph, &site, &registry()) {
        Ok(_) => vec![],
        Err(d) => d.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn whole_section_references_are_checked_where_the_section_is_written() {
    assert!(section_errors(ROUTES, "@config.Routes").is_empty());
    // Unknown key: at the key in the site config, naming the reference.
    let e = section_errors(&ROUTES.replace("port = 2", "prot = 2"), "@config.Routes");
    assert_eq!(e, ["site.toml:10:1: Routes.route[1].prot: unknown field `prot`, expected `name` or `port` (in `nodes.d.section` = \"@config.Routes\", g.toml:18:11)"]);
    // Wrong type: at the value.
    let e = section_errors(
        &ROUTES.replace("port = 1", "port = \"one\""),
        "@config.Routes",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("site.toml:6:8: Routes.route[0].port: invalid type: string \"one\""),
        "{e:?}"
    );
    // A node check names a path inside the section.
    let e = section_errors(
        &ROUTES.replace("name = \"b\"", "name = \"a\""),
        "@config.Routes",
    );
    assert_eq!(e, ["site.toml:9:8: Routes.route[1].name: duplicate route `a` (in `nodes.d.section` = \"@config.Routes\", g.toml:18:11)"]);
    // A missing section: at the reference in the graph.
    let e = section_errors(ROUTES, "@config.Rutes");
    assert_eq!(e, ["g.toml:18:11: nodes.d.section: undefined site-config section `[Rutes]` (site config: site.toml); a single key is `@config.Section.key`"]);
}

#[test]
fn groups_default_by_role_and_are_validated() {
    let g = ok(&GOOD.replace("interval = 5", "interval = 5\ngroup = \"alerts\""));
    let groups: Vec<_> = g.nodes.iter().map(|n| n.group.as_str()).collect();
    assert_eq!(groups, ["daq", "alerts", "output"]);
    let g = ok(GOOD);
    assert_eq!(g.nodes[1].group, "monitoring_process");
    for bad in ["\"all\"", "\"a:b\"", "\"\"", "3"] {
        let e = errors(&GOOD.replace("interval = 5", &format!("interval = 5\ngroup = {bad}")));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("g.toml:9:9: nodes.b.group: `group` must be a name"),
            "{e:?}"
        );
    }
}

#[test]
fn too_deep_nesting_points_at_its_line() {
    // A header nested past the parser's recursion limit used to be
    // reported at 1:1 (the parser gives that error no position).
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let text = format!("{GOOD}\n[{}]\nx = 1\n", keys.join("."));
    let line = text.lines().position(|l| l.starts_with("[k0.")).unwrap() + 1;
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(&format!("g.toml:{line}:1: ")), "{e:?}");
}

/// One writer per file, one owner per address: the second claim is refused
/// with the places of both nodes (the first by its key, or by its header
/// when it took a default).
#[test]
fn two_sinks_on_one_file_and_two_nodes_on_one_port_are_refused() {
    let text = format!("{GOOD}\n[nodes.d]\ntype = \"out\"\ninputs = [\"b\"]\npath = \"./x.csv\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        e[0],
        "g.toml:18:8: nodes.d.path: file `x.csv` is also claimed by node `c` (g.toml:13:8, nodes.c.path): one writer per file, one owner per plot and address"
    );
    let text = "[nodes.a]\ntype = \"src\"\nhost = \"h\"\nport = 9000\n\n[nodes.z]\ntype = \"src\"\nhost = \"h\"\nport = 9000\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("g.toml:9:8: nodes.z.port: listening address `h:9000` is also claimed by node `a` (g.toml:4:8, nodes.a.port)"),
        "{e:?}"
    );
    // Port 0 (any free one) and different files are fine.
    ok(&text.replace("9000", "0"));
    ok(&GOOD.replace("x.csv", "y.csv"));
}

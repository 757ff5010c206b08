//! The DAG's graph as SVG, laid out on the server by layout-rs once per DAG version (cached by
//! DAG id and a hash of its source) and coloured per run by adding state classes to its nodes.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::domain::dag::Dag;
use crate::domain::ids::DagId;

/// One drawn graph and the hash of the DAG source it was drawn from.
type Drawn = (u64, Arc<str>);

/// Laid-out graphs by DAG id.
#[derive(Clone, Default)]
pub struct GraphCache {
    graphs: Arc<Mutex<HashMap<DagId, Drawn>>>,
}

impl GraphCache {
    /// The uncoloured SVG of `dag`, drawn now if this version of the DAG was never drawn.
    pub fn svg(&self, dag: &Dag) -> Arc<str> {
        let version = source_hash(dag);
        if let Ok(graphs) = self.graphs.lock()
            && let Some((cached_version, svg)) = graphs.get(&dag.dag_id)
            && *cached_version == version
        {
            return Arc::clone(svg);
        }
        let svg: Arc<str> = Arc::from(draw(dag));
        if let Ok(mut graphs) = self.graphs.lock() {
            graphs.insert(dag.dag_id.clone(), (version, Arc::clone(&svg)));
        }
        svg
    }
}

fn source_hash(dag: &Dag) -> u64 {
    let mut hasher = DefaultHasher::new();
    dag.source.hash(&mut hasher);
    dag.tasks.len().hash(&mut hasher);
    hasher.finish()
}

/// The marker every node carries, which [`colour`] extends with the node's state.
fn node_attributes(task_id: &str) -> String {
    format!("class=\"node\" data-task-id=\"{task_id}\"")
}

/// Adds `state-<state>` to each node's class, from `(task_id, state)` pairs.
pub fn colour(svg: &str, states: &[(String, String)]) -> String {
    let mut coloured = svg.to_string();
    for (task_id, state) in states {
        coloured = coloured.replace(
            &node_attributes(task_id),
            &format!("class=\"node state-{state}\" data-task-id=\"{task_id}\""),
        );
    }
    coloured
}

/// Lays out the tasks left to right and renders them; a layout failure (layout-rs panics on
/// shapes it cannot place) gives an SVG that says so instead of a 500.
fn draw(dag: &Dag) -> String {
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layout_svg(dag)));
    match drawn {
        Ok(svg) => svg,
        Err(_) => {
            tracing::warn!(dag_id = %dag.dag_id, "laying out the DAG graph failed");
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"360\" height=\"40\"><text x=\"8\" y=\"24\">The graph could not be laid out; see the task list.</text></svg>".to_string()
        }
    }
}

fn layout_svg(dag: &Dag) -> String {
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let mut handles = HashMap::new();
    for task in &dag.tasks {
        let label = task.task_id.as_str();
        let width = label.chars().count() as f64 * 8.5 + 32.0;
        let look = StyleAttr::new(Color::fast("black"), 1, Some(Color::fast("white")), 6, 14);
        let element = Element::create_with_properties(
            ShapeKind::new_box(label),
            look,
            Orientation::LeftToRight,
            Point::new(width, 34.0),
            node_attributes(label),
        );
        handles.insert(task.task_id.clone(), graph.add_node(element));
    }
    for task in &dag.tasks {
        for upstream in &task.upstream {
            if let (Some(from), Some(to)) = (handles.get(upstream), handles.get(&task.task_id)) {
                graph.add_edge(Arrow::simple(""), *from, *to);
            }
        }
    }
    let mut writer = SVGWriter::new();
    graph.do_it(false, false, false, &mut writer);
    let svg = writer.finalize();
    // The writer sizes the canvas generously (each label grows it by its length, downwards):
    // size it to the laid-out nodes instead. Inline in HTML, without the XML declaration.
    let (mut width, mut height) = (0.0f64, 0.0f64);
    for handle in graph.iter_nodes() {
        let (_, bottom_right) = graph.pos(handle).bbox(true);
        width = width.max(bottom_right.x);
        height = height.max(bottom_right.y);
    }
    let body = svg
        .find("<svg")
        .and_then(|start| svg[start..].find('>').map(|end| &svg[start + end + 1..]))
        .unwrap_or(&svg);
    let body = without_style_element(body);
    let (width, height) = (width.ceil() + 10.0, height.ceil() + 10.0);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Graph of the DAG's tasks\">{body}"
    )
}

/// The SVG without the writer's `<style>` element: the page's Content-Security-Policy refuses
/// inline styles, and `weir.css` styles the graph's text already.
fn without_style_element(svg: &str) -> String {
    match (svg.find("<style"), svg.find("</style>")) {
        (Some(start), Some(end)) if start < end => format!("{}{}", &svg[..start], &svg[end + "</style>".len()..]),
        _ => svg.to_string(),
    }
}

//! What a training run shows: the learning curve (SVG, drawn as DOM nodes: no inline HTML),
//! the validation confusion matrix (a table), and the validation photos it got wrong, worst
//! first, each with its class selector and remove button (how users fix mislabelled photos).

use web_sys::{Element, HtmlElement};

use super::super::dom::{by_id, element, text};
use crate::fit::{EpochMetrics, Taught};

const SVG: &str = "http://www.w3.org/2000/svg";
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 160.0;
const PAD: f64 = 28.0;

fn svg(tag: &str, attributes: &[(&str, String)]) -> Element {
    let node = super::super::dom::document()
        .create_element_ns(Some(SVG), tag)
        .expect("an SVG element");
    for (name, value) in attributes {
        let _ = node.set_attribute(name, value);
    }
    node
}

/// Train and validation accuracy (solid) and loss (dashed) per epoch; a mark on the epoch kept.
pub fn curve(history: &[EpochMetrics], best_epoch: usize) -> Element {
    let root = svg(
        "svg",
        &[
            ("viewBox", format!("0 0 {WIDTH} {HEIGHT}")),
            ("role", "img".into()),
            ("class", "curve".into()),
            (
                "aria-label",
                format!(
                    "Learning curve: {} epochs, validation accuracy {:.2} at the kept epoch {best_epoch}",
                    history.len(),
                    history
                        .iter()
                        .find(|e| e.epoch == best_epoch)
                        .map_or(0.0, |e| e.val_accuracy)
                ),
            ),
        ],
    );
    let epochs = history.len().max(2) as f64;
    let max_loss = history
        .iter()
        .flat_map(|e| [e.train_loss, e.val_loss])
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let x = |epoch: usize| PAD + (epoch as f64 - 1.0) / (epochs - 1.0) * (WIDTH - 2.0 * PAD);
    let y = |value: f64| HEIGHT - PAD - value.clamp(0.0, 1.0) * (HEIGHT - 2.0 * PAD);
    let axis = svg(
        "path",
        &[
            (
                "d",
                format!("M{PAD} {PAD} V{} H{}", HEIGHT - PAD, WIDTH - PAD),
            ),
            ("class", "axis".into()),
        ],
    );
    let _ = root.append_child(&axis);
    let series: [(&str, &str, fn(&EpochMetrics) -> f64, bool); 4] = [
        ("train accuracy", "train", |e| e.train_accuracy, false),
        ("validation accuracy", "val", |e| e.val_accuracy, false),
        ("train loss", "train", |e| e.train_loss, true),
        ("validation loss", "val", |e| e.val_loss, true),
    ];
    for (name, class, value, is_loss) in series {
        let points: Vec<String> = history
            .iter()
            .map(|e| {
                let v = value(e);
                let v = if is_loss { v / max_loss } else { v };
                format!("{:.1},{:.1}", x(e.epoch), y(v))
            })
            .collect();
        let line = svg(
            "polyline",
            &[
                ("points", points.join(" ")),
                (
                    "class",
                    format!("{class}{}", if is_loss { " loss" } else { "" }),
                ),
            ],
        );
        let title = svg("title", &[]);
        title.set_text_content(Some(name));
        let _ = line.append_child(&title);
        let _ = root.append_child(&line);
    }
    let kept = svg(
        "line",
        &[
            ("x1", format!("{:.1}", x(best_epoch))),
            ("x2", format!("{:.1}", x(best_epoch))),
            ("y1", PAD.to_string()),
            ("y2", (HEIGHT - PAD).to_string()),
            ("class", "kept".into()),
        ],
    );
    let _ = root.append_child(&kept);
    for (label, at_x, at_y) in [
        ("1".to_string(), PAD, HEIGHT - PAD + 14.0),
        (history.len().to_string(), WIDTH - PAD, HEIGHT - PAD + 14.0),
        ("1.0".to_string(), 2.0, PAD + 4.0),
        ("0".to_string(), 12.0, HEIGHT - PAD + 4.0),
        (
            "epochs (solid: accuracy, dashed: loss; blue: train, orange: validation)".to_string(),
            PAD,
            HEIGHT - 4.0,
        ),
    ] {
        let node = svg("text", &[("x", at_x.to_string()), ("y", at_y.to_string())]);
        node.set_text_content(Some(&label));
        let _ = root.append_child(&node);
    }
    root
}

/// The confusion matrix as a table: rows are the true class, columns the predicted one.
pub fn confusion_table(taught: &Taught) -> HtmlElement {
    let table: HtmlElement = element("table");
    table.set_class_name("confusion");
    let caption = text(
        "caption",
        "",
        "Validation photos: true class ↓, predicted →",
    );
    let _ = table.append_child(&caption);
    let head = element::<HtmlElement>("tr");
    let _ = head.append_child(&text("th", "", ""));
    for class in &taught.confusion.classes {
        let _ = head.append_child(&text("th", "", class));
    }
    let _ = table.append_child(&head);
    for (t, row) in taught.confusion.matrix.iter().enumerate() {
        let tr = element::<HtmlElement>("tr");
        let th = text("th", "", &taught.confusion.classes[t]);
        let _ = th.set_attribute("scope", "row");
        let _ = tr.append_child(&th);
        for (p, count) in row.iter().enumerate() {
            let cell = text(
                "td",
                if p == t { "right" } else { "wrong" },
                &count.to_string(),
            );
            let _ = tr.append_child(&cell);
        }
        let _ = table.append_child(&tr);
    }
    table
}

/// Replace the report's contents: curve, matrix, and an empty list for the wrong photos
/// (returned, for the caller to fill with live photo controls).
pub fn show(taught: &Taught) -> HtmlElement {
    let report: HtmlElement = by_id("teach-report");
    report.set_inner_html("");
    report.set_hidden(false);
    let _ = report.append_child(&curve(&taught.history, taught.best_epoch));
    let _ = report.append_child(&confusion_table(taught));
    let wrong: usize = taught
        .confusion
        .matrix
        .iter()
        .enumerate()
        .map(|(t, row)| {
            row.iter()
                .enumerate()
                .filter(|(p, _)| *p != t)
                .map(|(_, c)| c)
                .sum::<usize>()
        })
        .sum();
    let heading = text(
        "h3",
        "",
        &if wrong == 0 {
            "Every validation photo was right.".to_string()
        } else {
            format!(
                "Validation photos it got wrong ({wrong}), worst first: fix a label, or remove the photo"
            )
        },
    );
    let _ = report.append_child(&heading);
    let list: HtmlElement = element("ul");
    list.set_id("teach-wrong");
    list.set_class_name("wrong");
    let _ = report.append_child(&list);
    list
}

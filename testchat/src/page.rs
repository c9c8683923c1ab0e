//! `/`: read a channel and post into it as any user, so that a person can
//! talk to the bot by hand.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::{lock, Shared};

pub(crate) async fn index(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let st = lock(&s);
    let current = q
        .get("channel")
        .cloned()
        .unwrap_or_else(|| st.hook.2.clone());
    let user = q.get("user").cloned().unwrap_or_else(|| "shifter".into());
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>testchat</title>\
         <style>body{font-family:sans-serif;margin:1em 2em}nav a{margin-right:1em}\
         .m{margin:.3em 0;white-space:pre-wrap}.u{font-weight:bold}.t{color:#888;font-size:80%}form{margin-top:1em}\
         </style></head><body><h1>testchat</h1><p>A stand-in Rocket.Chat server for km3mon \
         (not a real chat). Channels:</p><nav>",
    );
    for c in &st.channels {
        let style = if c.name == current {
            " style=\"font-weight:bold\""
        } else {
            ""
        };
        out += &format!(
            "<a href=\"/?channel={0}&amp;user={2}\"{1}>#{0}</a>",
            esc(&c.name),
            style,
            esc(&user)
        );
    }
    out += &format!("</nav><h2>#{}</h2><div id=\"messages\">", esc(&current));
    if let Some(c) = st.channels.iter().find(|c| c.name == current) {
        for m in &c.messages {
            out += &format!(
                "<div class=\"m\"><span class=\"t\">{}</span> <span class=\"u\">{}</span>: {}</div>",
                esc(&m.ts),
                esc(&m.username),
                esc(&m.text)
            );
        }
    }
    out += &format!(
        "</div><form method=\"post\" action=\"/post\">\
         <input type=\"hidden\" name=\"channel\" value=\"{0}\">\
         as <input name=\"user\" value=\"{1}\" size=\"12\"> \
         <input name=\"text\" size=\"60\" autofocus placeholder=\"@{2} help\"> \
         <button>post</button></form>\
         <script>setInterval(async()=>{{const r=await fetch(location.href);\
         const d=new DOMParser().parseFromString(await r.text(),'text/html');\
         document.getElementById('messages').innerHTML=d.getElementById('messages').innerHTML}},2000)\
         </script></body></html>",
        esc(&current),
        esc(&user),
        esc(&st.bot)
    );
    Html(out)
}

pub(crate) async fn post_form(
    State(s): State<Shared>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let channel = f.get("channel").cloned().unwrap_or_default();
    let user = f.get("user").map(|u| u.trim()).unwrap_or("").to_string();
    let text = f.get("text").cloned().unwrap_or_default();
    if !user.is_empty() && !text.trim().is_empty() {
        lock(&s).add_message(&channel, &user, &text);
    }
    let back =
        serde_urlencoded::to_string([("channel", &channel), ("user", &user)]).unwrap_or_default();
    Redirect::to(&format!("/?{back}")).into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

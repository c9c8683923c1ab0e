//! `km3mon testchat`: a stand-in Rocket.Chat server on 127.0.0.1, to try
//! alerts and the chatbot without a real chat server. Prints its URL and
//! the `[Alerts]` snippet that points km3mon at it; the page at `/` shows
//! the channel and posts into it as any user.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TestchatArgs {
    /// Port on 127.0.0.1 (0: any free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The channel alerts go to (also the incoming webhook's channel).
    #[arg(long, value_name = "NAME", default_value = "operations")]
    channel: String,
    /// The bot's user name.
    #[arg(long, value_name = "NAME", default_value = "monitoring")]
    bot: String,
    /// The bot's password.
    #[arg(long, value_name = "PW", default_value = "monitoring")]
    password: String,
}

pub fn run(args: TestchatArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::signals::stop_on_signals()?;
    let defaults = testchat::Options::default();
    let mut channels = defaults.channels.clone();
    if !channels.contains(&args.channel) {
        channels.push(args.channel.clone());
    }
    let opts = testchat::Options {
        port: args.port,
        users: vec![(args.bot.clone(), args.password.clone())],
        channels,
        hook_channel: args.channel.clone(),
        ..defaults
    };
    let chat = testchat::TestChat::start(opts)?;
    println!("{}/", chat.url());
    eprintln!(
        "testchat: a stand-in Rocket.Chat server (not a real chat; everything stays in memory).\n\
         Open {url}/ to read #{ch} and post as any user, e.g. \"@{bot} help\".\n\n\
         Site config (pipeline.toml) for the REST bot:\n\n\
         [Alerts]\nenabled = true\nbotname = \"{bot}\"\npassword = \"{pw}\"   # testchat only: use [Alerts.chat] password_env for a real server\n\
         channel = \"{ch}\"\n\n[Alerts.chat]\nmode = \"rest\"\nurl = \"{url}\"\n\n\
         or, for the incoming webhook instead:\n\n\
         [Alerts.chat]\nmode = \"webhook\"\nwebhook_url = \"{hook}\"\n\n\
         Or all in one (bot monitoring/monitoring, docs/chatbot.md):\n\n  \
         km3mon demo --chat-url {url} --chat-channel {ch}\n\n\
         Ctrl-C stops it.",
        url = chat.url(),
        ch = args.channel,
        bot = args.bot,
        pw = args.password,
        hook = chat.hook_url(),
    );
    stop.wait();
    Ok(ExitCode::SUCCESS)
}

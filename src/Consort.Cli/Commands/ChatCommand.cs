using System.CommandLine;
using System.Diagnostics;
using Consort.Config;
using Consort.Telemetry;
using Microsoft.Extensions.AI;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort chat CONFIG [--model NAME]</c>: an interactive session with any model or collaboration of a config.
/// Answers stream as they are generated; a collaboration's inner calls are printed as they finish (who was asked,
/// in which role, what it said, tokens and time). Reads one message per line from standard input (a terminal or a
/// pipe); <c>/reset</c> forgets the conversation, <c>/exit</c> (or end of input) quits.
/// </summary>
public sealed class ChatCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "Run or serve config (JSON) naming the models." };
        var model = new Option<string?>("--model") { Description = "Which run or model to talk to (default: the only one, else the first collaboration)." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Most tokens per answer (default: the config's task, else 256)." };
        var temperature = new Option<float?>("--temperature") { Description = "Sampling temperature (default: the task's, else 0)." };
        var history = new Option<bool?>("--history") { Description = "Keep the conversation (default: yes for chat models, no for base models, which continue text)." };
        var cmd = new Command("chat", "Talk to a model or collaboration; inner calls are shown as they happen.") { config, model, maxTokens, temperature, history };
        cmd.SetAction(async (pr, ct) => await ChatAsync(pr.GetValue(config)!, pr.GetValue(model), pr.GetValue(maxTokens), pr.GetValue(temperature), pr.GetValue(history), ct));
        return cmd;
    }

    private static async Task<int> ChatAsync(string configPath, string? name, int? maxTokens, float? temperature, bool? keepHistory, CancellationToken ct)
    {
        if (maxTokens is <= 0) throw new ConfigException($"--max-tokens must be positive, got {maxTokens}");
        var plan = await RunPlan.PrepareAsync(new RunRequest { ConfigPath = configPath, NeedsTask = false, OutDir = Path.GetTempPath() }, null, download: true, ct);
        var candidates = plan.Runs.Count > 0 ? plan.Runs : plan.Config.Models.Select(m => new RunEntry(m.Name, m)).ToList();
        if (candidates.Count == 0) throw new ConfigException($"{Path.GetFileName(configPath)}: no models to chat with");
        var entry = name is not null
            ? candidates.FirstOrDefault(r => r.Name == name) ?? plan.Config.Models.Where(m => m.Name == name).Select(m => new RunEntry(m.Name, m)).FirstOrDefault()
              ?? throw new ConfigException($"--model: no run or model named '{name}'; choose one of: {string.Join(", ", candidates.Select(c => c.Name))}")
            : candidates.Count == 1 ? candidates[0] : candidates.FirstOrDefault(c => c.Model is CollaborationSpec) ?? candidates[0];

        using var session = plan.CreateSession(null, m => Console.Error.WriteLine(m));
        var built = await session.BuildAsync(entry.Model, ct);
        var options = plan.Task?.BuildChatOptions() ?? new ChatOptions { Temperature = 0f };
        options.MaxOutputTokens = maxTokens ?? (plan.Task is null ? 256 : options.MaxOutputTokens);
        if (temperature is { } t) options.Temperature = t;
        bool history = keepHistory ?? !plan.BaseModels;

        // Spans give the nesting depth of inner calls; the event prints them as they finish.
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == ConsortTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var calls = new List<CallRecord>();
        void OnCall(CallRecord c)
        {
            if (c.Role is null) return; // the collaboration's own call: its answer follows
            lock (calls)
            {
                calls.Add(c);
                string indent = new(' ', 2 + 2 * Math.Max(0, c.Depth - 1));
                string what = c.Error is not null ? $"failed: {c.Error}" : $"\"{Short(c.Output)}\"";
                Console.WriteLine($"{indent}-> {c.Model} ({c.Role}): {what} · {c.InputTokens} in / {c.OutputTokens} out tokens · {c.Elapsed.TotalMilliseconds:F0} ms");
            }
        }
        ConsortTelemetry.CallCompleted += OnCall;
        try
        {
            string kind = built.Method is { } m ? $"{m} of {string.Join(", ", built.Members.Select(x => x.Name))}" : "single model";
            Console.WriteLine($"consort chat: {built.Name} ({kind}); {(history ? "the conversation is kept" : "each line is a new prompt (base models continue text)")}; /reset, /exit");
            var messages = new List<ChatMessage>();
            while (!ct.IsCancellationRequested)
            {
                Console.Write("> ");
                var line = await Console.In.ReadLineAsync(ct);
                if (Console.IsInputRedirected) Console.WriteLine(line ?? ""); // a transcript: what was asked, then what happened
                if (line is null || line.Trim() is "/exit" or "/quit") break;
                if (line.Trim() == "/reset") { messages.Clear(); Console.WriteLine("(conversation cleared)"); continue; }
                if (line.Trim().Length == 0) continue;
                if (!history) messages.Clear();
                messages.Add(new ChatMessage(ChatRole.User, line));
                lock (calls) calls.Clear();
                var sw = Stopwatch.StartNew();
                var updates = new List<ChatResponseUpdate>();
                bool started = false;
                try
                {
                    await foreach (var u in built.Chat.GetStreamingResponseAsync(messages, options, ct))
                    {
                        if (!started) { Console.Write($"{built.Name}: "); started = true; }
                        Console.Write(u.Text);
                        updates.Add(u);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Console.WriteLine();
                    Console.WriteLine($"error: {Consort.Evaluation.ErrorText.Describe(e)}");
                    messages.RemoveAt(messages.Count - 1);
                    continue;
                }
                var response = updates.ToChatResponse();
                Console.WriteLine(started ? "" : $"{built.Name}: (no output)");
                long inTok = response.Usage?.InputTokenCount ?? 0, outTok = response.Usage?.OutputTokenCount ?? 0;
                int n; lock (calls) n = calls.Count;
                Console.WriteLine($"  ({(n > 0 ? $"{n} inner call(s), " : "")}{inTok} in / {outTok} out tokens, {sw.Elapsed.TotalMilliseconds:F0} ms)");
                messages.Add(new ChatMessage(ChatRole.Assistant, response.Text));
            }
        }
        finally
        {
            ConsortTelemetry.CallCompleted -= OnCall;
        }
        return ExitCodes.Ok;
    }

    private static string Short(string? text)
    {
        var s = (text ?? "").Replace("\n", "\\n");
        return s.Length > 80 ? s[..80] + "..." : s;
    }
}

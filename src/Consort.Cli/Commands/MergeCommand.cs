using System.CommandLine;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Consort.Weights.Methods;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort merge CONFIG.yml --out PATH</c>: runs a mergekit-style merge config.</summary>
public sealed class MergeCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "mergekit-style YAML (merge_method, base_model, models or slices, parameters, dtype, tokenizer, chat_template)" };
        var output = new Option<string>("--out", "-o") { Description = "output: a .gguf file, or a folder for safetensors (either way, whatever the inputs are)", Required = true };
        var shard = new Option<string?>("--out-shard-size") { Description = "most bytes per safetensors shard, e.g. 5B (mergekit's option; K, M, B suffixes)" };
        var seed = new Option<int?>("--random-seed") { Description = "seed for random methods (DARE, DELLA); overrides random_seed in the config" };
        var crimes = new Option<bool>("--allow-crimes") { Description = "merge models of different architectures" };
        var lazy = new Option<bool>("--lazy-unpickle") { Description = "accepted for mergekit compatibility; Consort always streams from memory-mapped files" };
        var cmd = new Command("merge", "Merge model weights with mergekit's methods (" + string.Join(", ", MergeMethodRegistry.Names) + ").");
        cmd.Arguments.Add(config);
        foreach (var o in new Option[] { output, shard, seed, crimes, lazy }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var cfg = MergeConfig.Load(pr.GetValue(config)!, Consort.Config.ModelReferenceResolver.ResolveReference);
            cfg = cfg with
            {
                OutShardSize = pr.GetValue(shard) is { } s ? MergeConfig.ParseSize(s, "--out-shard-size") : cfg.OutShardSize,
                Seed = pr.GetValue(seed) ?? cfg.Seed,
                AllowCrimes = cfg.AllowCrimes || pr.GetValue(crimes),
                LazyUnpickle = cfg.LazyUnpickle || pr.GetValue(lazy),
            };
            foreach (var w in MergeEngine.Validate(cfg)) Console.Error.WriteLine($"warning: {w}");
            var to = pr.GetValue(output)!;
            OutputPaths.CheckModelOutput(to, "--out");
            var result = Run(cfg, to, ct);
            PrintSummary(result);
            return Task.FromResult(0);
        });
        return cmd;
    }

    internal static MergeResult Run(MergeConfig cfg, string output, CancellationToken ct)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            int lastDecile = -1;
            var plain = new Inline<MergeProgress>(p =>
            {
                int decile = (int)(p.BytesDone * 10 / Math.Max(1, p.BytesTotal));
                if (decile == lastDecile) return;
                lastDecile = decile;
                Console.WriteLine($"  merge: {p.Done}/{p.Total} tensors, {p.BytesDone / 1e6:F1}/{p.BytesTotal / 1e6:F1} MB");
            });
            return MergeEngine.Run(cfg, output, plain, ct);
        }
        MergeResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var bar = ctx.AddTask($"{Markup.Escape(cfg.MergeMethod)} merge", maxValue: 1);
                result = MergeEngine.Run(cfg, output, new Inline<MergeProgress>(p =>
                {
                    bar.MaxValue = Math.Max(1, p.BytesTotal);
                    bar.Value = p.BytesDone;
                    bar.Description = $"{Markup.Escape(cfg.MergeMethod)} [grey]{Markup.Escape(p.Tensor)}[/]";
                }), ct);
            });
        return result!;
    }

    internal static void PrintSummary(MergeResult r)
    {
        Console.WriteLine($"wrote {r.Output}");
        Console.WriteLine($"  tensors      {r.Tensors}");
        Console.WriteLine($"  read         {r.BytesRead / 1e6:F1} MB (all passes)");
        Console.WriteLine($"  written      {r.BytesWritten / 1e6:F1} MB");
        Console.WriteLine($"  seconds      {r.Seconds:F2}");
        Console.WriteLine($"  peak memory  {(r.PeakMemoryBytes < 0 ? "unknown" : $"{r.PeakMemoryBytes / 1e6:F0} MB")}");
    }

    /// <summary>Reports inline, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    internal sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

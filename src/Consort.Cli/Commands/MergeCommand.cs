using System.CommandLine;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort merge CONFIG.yml --out PATH</c>: runs a mergekit-style merge config.</summary>
public sealed class MergeCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "mergekit-style YAML (merge_method, base_model, models, parameters, dtype)" };
        var output = new Option<string>("--out", "-o") { Description = "output: a .gguf file, or a folder for safetensors", Required = true };
        var cmd = new Command("merge", "Merge model weights (linear, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, slerp, model_stock, expo).");
        cmd.Arguments.Add(config);
        cmd.Options.Add(output);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var cfg = MergeConfig.Load(pr.GetValue(config)!, Consort.Config.ModelReferenceResolver.ResolveReference);
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

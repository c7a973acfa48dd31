using System.CommandLine;
using Consort.Cli.Reports;

namespace Consort.Cli.Commands;

/// <summary><c>consort report OUT</c>: writes OUT/report.html (self-contained, charts embedded) and OUT/report.md for a run output folder.</summary>
public sealed class ReportCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var dir = new Argument<string>("out") { Description = "A `consort run` output folder (runs in subfolders) or one run folder." };
        var cmd = new Command("report", "Write report.html (self-contained, with charts) and report.md for the runs in a folder.") { dir };
        cmd.SetAction(pr =>
        {
            var folder = pr.GetValue(dir)!;
            if (!Directory.Exists(folder)) throw new ConsortException($"report: folder not found: {folder}");
            var files = ReportWriter.Write(folder);
            Console.WriteLine($"wrote {files.Html} and {files.Markdown} ({files.Charts} charts)");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}

using System.CommandLine;
using System.Text.RegularExpressions;

namespace Consort.Cli;

/// <summary>Exit codes of <c>consort</c> (documented in the README).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>An error: bad config or input, a missing file, a run that could not finish (one line "error: ...").</summary>
    public const int Error = 1;
    /// <summary>Bad command line (unknown option, a value of the wrong type).</summary>
    public const int Usage = 2;
    /// <summary>The run finished but some items failed (counted in the table and summary.json); <c>--allow-errors</c> makes it 0.</summary>
    public const int ItemErrors = 3;
    /// <summary>Interrupted (Ctrl+C); what finished is kept and a rerun resumes.</summary>
    public const int Cancelled = 130;
}

/// <summary>A subcommand of <c>consort</c>. Implementations are discovered by reflection.</summary>
public interface ICliCommand
{
    /// <summary>Builds the command with its options and action.</summary>
    Command Build();
}

/// <summary>Runs the parsed command and turns user errors into a one-line reason and a non-zero exit code.</summary>
public static partial class CliRunner
{
    /// <summary>Parses and invokes; exceptions become "error: ..." on stderr and exit code 1 (2 for usage errors).</summary>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        // SIGTERM cancels like Ctrl+C and the command winds down in its own time (a server drains its requests);
        // System.CommandLine's own handler would end the process after 2 s.
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                // One line, in words (no .NET type names), with where to read more.
                var command = parsed.CommandResult.Command;
                string help = command == root ? "consort help" : $"consort help {command.Name}";
                Console.Error.WriteLine($"error: {string.Join("; ", parsed.Errors.Select(e => Friendly(e.Message)).Distinct())} (see `{help}`)");
                return ExitCodes.Usage;
            }
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }, cts.Token);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("error: cancelled");
            return ExitCodes.Cancelled;
        }
        catch (ConsortException e)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return ExitCodes.Error;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return ExitCodes.Error;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: internal: {e.GetType().Name}: {OneLine(e.Message)}");
            if (Environment.GetEnvironmentVariable("CONSORT_DEBUG") == "1") Console.Error.WriteLine(e);
            return ExitCodes.Error;
        }
    }

    /// <summary>Error text as one terminal-safe line: control characters escaped, at most 4,000 characters.</summary>
    public static string OneLine(string message) => MessageText.Escape(message, 4000);

    /// <summary>A parser message in words: "Cannot parse argument 'abc' for option '--limit' as expected type
    /// 'System.Nullable`1[System.Int32]'" becomes "--limit: 'abc' is not a whole number".</summary>
    public static string Friendly(string message)
    {
        var m = ParseFailure().Match(message);
        if (!m.Success) return TypeName().Replace(message, t => Words(t.Groups[1].Value));
        return $"{m.Groups["target"].Value}: '{m.Groups["value"].Value}' is not {Words(m.Groups["type"].Value)}";
    }

    private static string Words(string type)
    {
        var inner = Regex.Match(type, @"Nullable`1\[(.+)\]") is { Success: true } n ? n.Groups[1].Value : type;
        return inner.Split('.')[^1].TrimEnd(']', '[') switch
        {
            "Int32" or "Int64" or "Int16" => "a whole number",
            "Single" or "Double" or "Decimal" => "a number",
            "Boolean" => "true or false",
            "String[]" or "String" => "text",
            "TimeSpan" => "a duration",
            var other => "a value of kind " + other,
        };
    }

    [GeneratedRegex(@"Cannot parse argument '(?<value>.*)' for (?:option|argument) '(?<target>[^']*)' as expected type '(?<type>[^']*)'")]
    private static partial Regex ParseFailure();

    [GeneratedRegex(@"'(System\.[A-Za-z0-9_.`\[\]]+)'")]
    private static partial Regex TypeName();
}

/// <summary>A benchmark: a subcommand of <c>consort bench</c> (not of the root). Discovered by reflection.</summary>
public interface IBenchCommand
{
    /// <summary>Builds the benchmark's command (its name is the word after "bench").</summary>
    Command Build();
}
